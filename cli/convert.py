"""`stylegen convert`: any network file we read, written as our snapshot or a rosinality checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import click

from stylegen.cli import common


@click.command("convert", short_help="Convert a network file to a stylegen snapshot (or rosinality .pt).")
@click.argument("src", metavar="IN", type=common.NETWORK)
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=True, path_type=Path))
@click.option(
    "--to",
    "target",
    type=click.Choice(["stylegen", "rosinality"]),
    default="stylegen",
    show_default=True,
    help="Output format: our snapshot (loads with torch.load(weights_only=True)) or a "
    "rosinality/stylegan2-pytorch checkpoint (g_ema, latent_avg, + g and d when present).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@common.library_errors
def convert(src: str, dst: Path, target: str, force: bool) -> None:
    """Read the network file IN (a stylegen snapshot, an NVIDIA PyTorch or TensorFlow pickle, a
    rosinality checkpoint, or a bundled name such as 'people') and write OUT with every network
    it has (G_ema, G, D). A G or D that cannot be rebuilt is skipped with a note. The output
    records the input's name, sha256 and format. Nothing from IN is executed; OUT is written
    atomically."""
    from stylegen.formats.convert import convert_network

    check_output(Path(src), dst, force)
    result = convert_network(src, dst, to=target)
    for note in result.source.source_notes:
        click.echo(f"note: {note}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"Read {src} ({result.source.source_format})")
    click.echo(f"Wrote {dst} ({target}: {', '.join(result.written)})")


def check_output(src: Path, dst: Path, force: bool) -> None:
    """Refuse OUT == IN, a directory, a missing parent directory, and an existing OUT without --force."""
    if dst.exists() and os.path.samefile(dst, src):
        raise common.CLIError(f"{dst}: OUT is the input file; write the conversion to another path")
    if dst.is_dir():
        raise common.CLIError(f"{dst}: is a directory; OUT must be a file path")
    if not dst.parent.is_dir():
        raise common.CLIError(f"{dst}: directory {dst.parent} does not exist")
    if dst.exists() and not force:
        raise common.CLIError(f"{dst}: exists; pass --force to replace it")
