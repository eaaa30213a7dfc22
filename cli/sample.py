"""`stylegen sample`: images for a list of seeds, one `seed%04d.png` each."""

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


class Degrees(click.ParamType):
    """A finite angle in degrees."""

    name = "DEG"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            deg = float(value)
        except (TypeError, ValueError):
            deg = math.nan
        if not math.isfinite(deg):
            self.fail(f"{value!r}: expected a finite angle in degrees, e.g. 20", param, ctx)
        return deg


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
        type=Degrees(),
        default=None,
        help="StyleGAN3 only: turn the images by DEG degrees counter-clockwise about their centre.",
    )(command)
    return click.option(
        "--translate",
        type=Translation(),
        default=None,
        help="StyleGAN3 only: move the images by X,Y image widths/heights (x right, y down), e.g. '0.3,-0.2'.",
    )(command)


@click.command("sample", short_help="Generate one PNG per seed.")
@common.network_option
@click.option("--seeds", type=common.SEEDS, required=True, help="Seeds, e.g. '0-99' or '1,5,7-9'.")
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
    help="Also write ws.npz: the ws of every seed (see docs/cli.md).",
)
@common.library_errors
def sample(
    network,
    seeds,
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
    """Generate one image per seed: OUTDIR/seed0000.png, ...

    z = stylegen.seed_to_z(seed, z_dim) (NVIDIA's RandomState convention), so the same seed
    gives the same image as NVIDIA's generate.py with --noise-mode const.

    StyleGAN3 networks can rotate, then translate their images (--rotate, --translate): the
    same pixels as NVIDIA's gen_images.py with those options.

    --edit FILE:K:S adds S times direction K to the ws the file names, after truncation (so the
    truncation does not shrink the move); --save-ws writes the moved ws.
    """
    import stylegen

    device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path)
    _check_transform_options(G, translate, rotate)
    edit_list = load_edits(edits, G, path)
    G = G.to(device).freeze()
    if translate is not None or rotate is not None:
        G.synthesis.set_input_transform(translate or (0.0, 0.0), rotate or 0.0)
    c = common.class_labels(G, class_idx, 1, device)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    images, all_ws = generate(G, seeds, c, truncation_psi, truncation_cutoff, noise_mode, batch, outdir, edit_list)
    if grid:
        save_png(outdir / "grid.png", make_grid(images))
    if save_ws:
        from stylegen.formats.ws_file import save_ws_file

        save_ws_file(
            outdir / "ws.npz",
            all_ws,
            seeds,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            class_idx=class_idx,
            network=path,
        )
    click.echo(f"Wrote {len(seeds)} image(s) to {outdir}")


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


def generate(G, seeds, c, truncation_psi, truncation_cutoff, noise_mode, batch, outdir, edits=()):
    """Run G over the seeds in batches, writing each PNG as soon as it exists; `edits`
    [(Directions, K, S)] move the (truncated) ws before synthesis.

    Returns (uint8 [H, W, C] images, ws [N, num_ws, w_dim] on the CPU).
    """
    import torch

    from stylegen.editing.directions import apply_edits
    from stylegen.editing.mixing import ws_from_seeds

    images, all_ws = [], []
    starts = range(0, len(seeds), batch)
    show = len(starts) > 1
    bar = common.progress(len(seeds), f"Generating {len(seeds)} images", show)
    with torch.inference_mode(), bar:
        for start in starts:
            chunk = seeds[start : start + batch]
            ws = ws_from_seeds(G, chunk, truncation_psi, truncation_cutoff, c)
            if edits:
                ws = apply_edits(ws, edits)
            imgs = to_numpy_images(G.synthesis(ws, noise_mode=noise_mode))
            for seed, im in zip(chunk, imgs):
                save_png(outdir / f"seed{seed:04d}.png", im)
            images.extend(imgs)
            all_ws.append(ws.float().cpu())
            bar.update(len(chunk))
    return images, torch.cat(all_ws)
