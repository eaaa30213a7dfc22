"""`stylegen sample`: images for a list of seeds (one `seed%04d.png` each) or the rows of a ws file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from stylegen.cli import common
from stylegen.formats.images import make_grid, save_png, to_numpy_images


class Translation(click.ParamType):
    """'X,Y': two finite numbers (image widths and heights), e.g. '0.3,-0.2'."""

    name = "X,Y"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            xy = tuple(float(p) for p in parts)
        except ValueError:
            xy = ()
        if len(parts) != 2 or len(xy) != 2 or not all(math.isfinite(v) for v in xy):
            self.fail(f"{value!r}: expected two numbers X,Y, e.g. '0.3,-0.2'", param, ctx)
        return xy


class EditSpec(click.ParamType):
    """'FILE:K:S': a directions file of `stylegen directions`, a direction index K and a strength S."""

    name = "FILE:K:S"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int, float]:
        if isinstance(value, tuple):
            return value
        parts = str(value).rsplit(":", 2)  # FILE may hold colons (a Windows drive)
        try:
            path, k, strength = parts[0], int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            self.fail(f"{value!r}: expected FILE:K:S, e.g. 'dirs.npz:0:2.5'", param, ctx)
        if k < 0 or not math.isfinite(strength):
            self.fail(f"{value!r}: K must be a direction index >= 0 and S a finite strength", param, ctx)
        if not Path(path).is_file():
            self.fail(f"{value!r}: no such file {path!r}", param, ctx)
        return path, k, strength


def transform_options(command):
    """--translate X,Y and --rotate DEG (StyleGAN3 only; see _check_transform_options)."""
    command = click.option(
        "--rotate",
        type=common.FiniteFloat("DEG", "expected a finite angle in degrees, e.g. 20"),
        default=None,
        help="StyleGAN3 only: turn the images by DEG degrees counter-clockwise about their centre.",
    )(command)
    return click.option(
        "--translate",
        type=Translation(),
        default=None,
        help="StyleGAN3 only: move the images by X,Y image widths/heights (x right, y down), e.g. '0.3,-0.2'.",
    )(command)


WS_FILE = click.Path(exists=True, dir_okay=False)


@click.command("sample", short_help="Generate one PNG per seed (or per ws file row).")
@common.network_option
@click.option("--seeds", type=common.SEEDS, default=None, help="Seeds, e.g. '0-99' or '1,5,7-9'.")
@click.option(
    "--ws",
    "ws_file",
    type=WS_FILE,
    default=None,
    metavar="FILE",
    help="Instead of --seeds: render the ws stored in a ws file (`sample --save-ws`, `project`), as "
    "they are (already truncated: no --trunc, --trunc-cutoff, --class).",
)
@common.generation_options
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="Directory for the PNGs (created if missing).",
)
@click.option(
    "--grid",
    is_flag=True,
    help="Also write grid.png with all images (ceil(sqrt(N)) columns).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Images generated per forward pass.",
)
@transform_options
@click.option(
    "--edit",
    "edits",
    type=EditSpec(),
    multiple=True,
    help="Move along direction K of a directions file (`stylegen directions`) with strength S, "
    "at that file's ws, after truncation; repeatable (the moves add up).",
)
@common.device_option
@click.option(
    "--save-ws",
    is_flag=True,
    help="Also write ws.npz: the ws of every image, after --edit (see docs/cli.md).",
)
@common.library_errors
def sample(
    network,
    seeds,
    ws_file,
    truncation_psi,
    truncation_cutoff,
    noise_mode,
    class_idx,
    outdir,
    grid,
    batch,
    translate,
    rotate,
    edits,
    device,
    save_ws,
):
    """Generate one image per seed: OUTDIR/seed0000.png, ...; or, with --ws FILE, one per row of
    a ws file: seed%04d.png for rows with a seed, <file stem><row>.png for those without
    (projected photos).

    z = stylegen.seed_to_z(seed, z_dim) (NVIDIA's RandomState convention), so the same seed
    gives the same image as NVIDIA's generate.py with --noise-mode const. A ws file of
    `sample --save-ws` gives back the very images of its seeds.

    StyleGAN3 networks can rotate, then translate their images (--rotate, --translate): the
    same pixels as NVIDIA's gen_images.py with those options.

    --edit FILE:K:S adds S times direction K to the ws the file names, after truncation (so the
    truncation does not shrink the move), for seeds and ws files alike; --save-ws writes the
    moved ws.
    """
    import stylegen

    check_one_source(seeds, ws_file)
    device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path)
    _check_transform_options(G, translate, rotate)
    edit_list = load_edits(edits, G, path)
    G = G.to(device).freeze()
    if translate is not None or rotate is not None:
        G.synthesis.set_input_transform(translate or (0.0, 0.0), rotate or 0.0)
    if ws_file is None:
        c = common.class_labels(G, class_idx, 1, device)
        rows = SeedRows(G, seeds, truncation_psi, truncation_cutoff, c, class_idx)
    else:
        rows = FileRows(G, ws_file, path)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    images, all_ws = generate(G, rows, noise_mode, batch, outdir, edit_list)
    if grid:
        save_png(outdir / "grid.png", make_grid(images))
    if save_ws:
        from stylegen.formats.ws_file import save_ws_file

        save_ws_file(outdir / "ws.npz", all_ws, rows.seeds, network=path, **rows.recorded)
    click.echo(f"Wrote {len(rows.names)} image(s) to {outdir}")


def check_one_source(seeds, ws_file) -> None:
    """Exactly one of --seeds and --ws; with --ws, no truncation or class options (the stored ws
    already hold theirs, so those would be silently ignored)."""
    if seeds is not None and ws_file is not None:
        raise click.UsageError("--seeds and --ws exclude each other: give seeds to draw, or a ws file to render")
    if seeds is None and ws_file is None:
        raise click.UsageError(
            "give --seeds SEEDS (e.g. '0-7') or --ws FILE (a ws file of `sample --save-ws` / `project`)"
        )
    if ws_file is not None:
        given = given_options(truncation_psi="--trunc", truncation_cutoff="--trunc-cutoff", class_idx="--class")
        if given:
            raise click.BadParameter(
                f"the ws of --ws {ws_file} already hold their truncation and class; leave {given[0]} out",
                param_hint=f"'{given[0]}'",
            )


def given_options(**names: str) -> list[str]:
    """The options among `names` (parameter name -> option) given on the command line."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return [opt for name, opt in names.items() if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]


class SeedRows:
    """Images drawn from seeds: ws by mapping and truncation, a batch at a time; named seed%04d."""

    def __init__(self, G, seeds, truncation_psi, truncation_cutoff, c, class_idx):
        self.G, self.seeds, self.c = G, list(seeds), c
        self.psi, self.cutoff = truncation_psi, truncation_cutoff
        self.names = [f"seed{s:04d}" for s in self.seeds]
        self.recorded = {"truncation_psi": truncation_psi, "truncation_cutoff": truncation_cutoff}
        self.recorded["class_idx"] = class_idx

    def ws(self, start: int, stop: int):
        from stylegen.editing.mixing import ws_from_seeds

        return ws_from_seeds(self.G, self.seeds[start:stop], self.psi, self.cutoff, self.c)


class FileRows:
    """Images of a ws file's rows, as stored; named seed%04d, or `load_ws_file`'s row name for rows
    without a seed. The truncation and class the file records are passed on to --save-ws."""

    def __init__(self, G, ws_file, network: str):
        import numpy as np

        from stylegen.cli.mix import warn_if_made_elsewhere
        from stylegen.editing.mixing import load_ws_file
        from stylegen.formats.ws_file import read_ws_file

        source = load_ws_file(ws_file, G)  # WsFileError (exit 2) unless it fits G
        warn_if_made_elsewhere(ws_file, network)
        self.all_ws = source.ws
        self.seeds = [int(s) for s in read_ws_file(ws_file)[1]]
        self.names = [f"seed{s:04d}" if s >= 0 else n for s, n in zip(self.seeds, source.names)]
        with np.load(ws_file) as data:
            psi = float(data["truncation_psi"]) if "truncation_psi" in data else 1.0
            cutoff, class_idx = (int(data[k]) if k in data else -1 for k in ("truncation_cutoff", "class_idx"))
        self.recorded = {
            "truncation_psi": psi,
            "truncation_cutoff": None if cutoff < 0 else cutoff,
            "class_idx": None if class_idx < 0 else class_idx,
        }

    def ws(self, start: int, stop: int):
        return self.all_ws[start:stop]


def _check_transform_options(G, translate, rotate) -> None:
    """--translate / --rotate move a StyleGAN3 network's Fourier features; other networks have none."""
    from stylegen.networks.sg3_generator import is_stylegan3

    given = [name for name, v in (("--translate", translate), ("--rotate", rotate)) if v is not None]
    if given and not is_stylegan3(G):
        raise click.BadParameter(
            "only StyleGAN3 networks can be translated or rotated; this is a StyleGAN2 network",
            param_hint=f"'{given[0]}'",
        )


def load_edits(edits, G, network: str) -> list:
    """--edit values -> [(Directions, K, S)], each file checked against the network (sha256, shapes)."""
    from stylegen.editing.directions import check_network, load_directions

    out = []
    for path, k, strength in edits:
        d = load_directions(path)
        check_network(d, G, network, source=path)
        if k >= len(d):
            raise click.BadParameter(f"{path}:{k}: the file holds directions 0-{len(d) - 1}", param_hint="'--edit'")
        out.append((d, k, strength))
    return out


def generate(G, rows, noise_mode, batch, outdir, edits=()):
    """Run G over `rows` (SeedRows / FileRows) in batches, writing each PNG (`rows.names`) as soon
    as it exists; `edits` [(Directions, K, S)] move the (truncated) ws before synthesis.

    Returns (uint8 [H, W, C] images, ws [N, num_ws, w_dim] on the CPU).
    """
    import torch

    from stylegen.editing.directions import apply_edits

    n = len(rows.names)
    images, all_ws = [], []
    starts = range(0, n, batch)
    bar = common.progress(n, f"Generating {n} images", len(starts) > 1)
    with torch.inference_mode(), bar:
        for start in starts:
            ws = rows.ws(start, start + batch)
            if edits:
                ws = apply_edits(ws, edits)
            imgs = to_numpy_images(G.synthesis(ws, noise_mode=noise_mode))
            for name, im in zip(rows.names[start : start + batch], imgs):
                save_png(outdir / f"{name}.png", im)
            images.extend(imgs)
            all_ws.append(ws.float().cpu())
            bar.update(len(imgs))
    return images, torch.cat(all_ws)
