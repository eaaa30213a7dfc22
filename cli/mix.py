"""`stylegen mix`: the StyleGAN style-mixing figure, and layer swapping between two networks."""

from __future__ import annotations

import os
from pathlib import Path

import click
from stylegen.images import make_grid, save_png, to_numpy_images
from stylegen.cli import common


@click.command("mix", short_help="Style mixing / layer swapping grid.")
@click.option(
    "--coarse",
    "src_path",
    metavar="SRC",
    type=click.Path(exists=True, dir_okay=False),
    help="Source network: its styles (and blocks) at the split levels. Default: the bundled model.",
)
@click.option(
    "--fine",
    "dst_path",
    metavar="DST",
    type=click.Path(exists=True, dir_okay=False),
    help="Destination network: everything else. Default: the same as --coarse.",
)
@click.option(
    "--coarse-seeds",
    type=common.SEEDS,
    default="0-4",
    show_default=True,
    help="Seeds of the sources (top row), through SRC's mapping.",
)
@click.option(
    "--fine-seeds",
    type=common.SEEDS,
    default="5-9",
    show_default=True,
    help="Seeds of the destinations (left column), through DST's mapping.",
)
@click.option(
    "--split",
    default="coarse",
    show_default=True,
    metavar="RES|coarse|middle|fine",
    help="What SRC gives: everything at resolution <= RES (a power of two), or exactly one "
    "level: coarse = 4-8, middle = 16-32, fine = 64 and up.",
)
@click.option(
    "--trunc",
    "truncation_psi",
    type=float,
    default=1.0,
    show_default=True,
    help="Truncation psi for both networks (each towards its own w_avg).",
)
@click.option(
    "--trunc-cutoff",
    "truncation_cutoff",
    type=click.IntRange(min=0),
    default=None,
    help="Truncate only the first N ws (default: all).",
)
@click.option(
    "--noise-mode",
    type=common.NOISE_MODES,
    default="const",
    show_default=True,
    help="Per-pixel noise mode.",
)
@click.option(
    "--class",
    "class_idx",
    type=click.IntRange(min=0),
    default=None,
    metavar="K",
    help="Class label for conditional networks.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Grid PNG. Default: OUTDIR/mix.png with --outdir, else mix.png.",
)
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write every cell as OUTDIR/mix-c{coarse seed}-f{fine seed}.png.",
)
@click.option(
    "--save-network",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PKL",
    help="Write the blended generator (SRC blocks at the split, DST's elsewhere; SRC's "
    "mapping), loadable by `stylegen sample`.",
)
@common.device_option
@common.library_errors
def mix(
    src_path,
    dst_path,
    coarse_seeds,
    fine_seeds,
    split,
    truncation_psi,
    truncation_cutoff,
    noise_mode,
    class_idx,
    out,
    outdir,
    save_network,
    device,
):
    """Style mixing: top row = SRC images of the coarse seeds, left column = DST images of the
    fine seeds, cell (row j, column i) = destination j with source i's styles at the split.

    With --fine omitted (or the same file) this is plain style mixing, as in the StyleGAN
    paper. With two networks of the same architecture (e.g. one fine-tuned from the other)
    it is layer swapping: the synthesis blocks at the split come from SRC, the rest from DST.
    The ws indices taken from SRC are printed.
    """
    import stylegen
    from stylegen import mixing

    device = common.resolve_device(device)
    src_path = common.resolve_network(src_path, "--coarse")
    G_src = stylegen.load_network(src_path).to(device).eval()
    G_dst = G_src
    if dst_path is not None and not os.path.samefile(src_path, dst_path):
        G_dst = stylegen.load_network(dst_path).to(device).eval()
        mixing.check_same_architecture(G_src, G_dst)
    try:
        selection = mixing.resolve_split(split, G_src.img_resolution, G_src.num_ws)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--split'") from e
    c = common.class_labels(G_src, class_idx, 1, device)
    report_selection(selection, G_src, layer_swap=G_dst is not G_src)
    src, dst = make_sources(
        G_src, G_dst, coarse_seeds, fine_seeds, truncation_psi, truncation_cutoff, c
    )
    G_mix = mixing.mixing_generator(src, dst, selection)
    out = Path(out) if out else Path(outdir or ".") / "mix.png"
    write_grid(
        G_mix, src, dst, selection, noise_mode, out, Path(outdir) if outdir else None
    )
    click.echo(f"Wrote {out}")
    if save_network:
        stylegen.save_network(save_network, G=G_mix, G_ema=G_mix)
        click.echo(f"Wrote the blended generator to {save_network}")


def report_selection(selection, G, layer_swap: bool) -> None:
    from stylegen import mixing

    rest = mixing.complement(selection, G.img_resolution, G.num_ws)
    click.echo(f"From SRC (coarse seeds): {selection.describe()}")
    click.echo(f"From DST (fine seeds):   {rest.describe()}")
    if layer_swap:
        blocks = mixing.block_resolutions(G.img_resolution)
        from_src = [f"b{r}" for r in blocks if r in selection.resolutions]
        from_dst = [f"b{r}" for r in blocks if r not in selection.resolutions]
        click.echo(
            f"Layer swapping: blocks {from_src} and the mapping from SRC, blocks {from_dst} from DST"
        )


def make_sources(
    G_src, G_dst, coarse_seeds, fine_seeds, truncation_psi, truncation_cutoff, c
):
    """A source is a network plus its ws; seeds now, `.npz` ws files can be added here later."""
    import torch

    from stylegen.mixing import StyleSource, ws_from_seeds

    with torch.inference_mode():
        ws_src = ws_from_seeds(
            G_src, coarse_seeds, truncation_psi, truncation_cutoff, c
        )
        ws_dst = ws_from_seeds(G_dst, fine_seeds, truncation_psi, truncation_cutoff, c)
    src = StyleSource(G_src, ws_src, [f"{s:04d}" for s in coarse_seeds])
    dst = StyleSource(G_dst, ws_dst, [f"{s:04d}" for s in fine_seeds])
    return src, dst


def write_grid(
    G_mix, src, dst, selection, noise_mode, out: Path, outdir: Path | None
) -> None:
    """(1 + Nd) x (1 + Ns) grid: blank corner, sources on top, destinations on the left."""
    import torch

    from stylegen.mixing import mix_rows

    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_rows = len(dst.names)
    with torch.inference_mode():
        tops = to_numpy_images(src.G.synthesis(src.ws, noise_mode=noise_mode))
        lefts = to_numpy_images(dst.G.synthesis(dst.ws, noise_mode=noise_mode))
        cells = [None, *tops]
        bar = common.progress(
            n_rows, f"Mixing {n_rows} x {len(src.names)}", show=n_rows > 1
        )
        with bar:
            rows = mix_rows(G_mix, src, dst, selection, noise_mode)
            for j, row in enumerate(rows):
                row = to_numpy_images(row)
                cells += [lefts[j], *row]
                if outdir is not None:
                    for i, im in enumerate(row):
                        save_png(
                            outdir / f"mix-c{src.names[i]}-f{dst.names[j]}.png", im
                        )
                bar.update(1)
    save_png(out, make_grid(cells, cols=len(src.names) + 1))
