"""`stylegen video`: a looping latent-interpolation video (MP4 or GIF), as a grid of cells."""

from __future__ import annotations

import re
from typing import Any

import click

from stylegen.cli import common
from stylegen.cli.sample import _check_transform_options, transform_options


class GridSize(click.ParamType):
    """'COLSxROWS' (or 'COLS,ROWS'), e.g. '4x2': two positive integers."""

    name = "COLSxROWS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        m = re.match(r"^\s*(\d+)\s*[x,]\s*(\d+)\s*$", str(value))
        if m is None or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            self.fail(f"{value!r}: expected COLSxROWS with positive integers, e.g. '4x2'", param, ctx)
        return int(m.group(1)), int(m.group(2))


@click.command("video", short_help="Looping interpolation video (MP4 / GIF).")
@common.network_option
@click.option(
    "--seeds",
    type=common.SEEDS,
    required=True,
    help="Key seeds: cell k of the grid sweeps through the k-th run of len(seeds) / (cols x rows) of them.",
)
@click.option(
    "--grid",
    type=GridSize(),
    default="1x1",
    show_default=True,
    help="Cells COLSxROWS, filled row by row.",
)
@click.option(
    "--frames-per-seed",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Frames from one key seed to the next.",
)
@click.option(
    "--kind",
    type=click.Choice(["cubic", "linear"]),
    default="cubic",
    show_default=True,
    help="Interpolation: cubic = C2 cubic spline through the keys (periodic when looping), or linear.",
)
@click.option(
    "--space",
    type=click.Choice(["w", "z"]),
    default="w",
    show_default=True,
    help="Interpolate the ws (after --trunc, as NVIDIA's gen_video.py) or z (mapped frame by frame).",
)
@click.option(
    "--loop/--no-loop",
    default=True,
    show_default=True,
    help="Wrap from the last key back to the first (K x F frames), or stop on the last key ((K-1) x F + 1).",
)
@common.generation_options
@click.option(
    "--fine-seeds",
    type=common.SEEDS,
    default=None,
    help="Style-mixing video: only the --split styles sweep through --seeds, all others stay those of "
    "these seeds (one per cell, or one for all).",
)
@click.option(
    "--split",
    default="coarse",
    show_default=True,
    metavar="RES|coarse|middle|fine|ws:LIST",
    help="With --fine-seeds: the styles that sweep, as `stylegen mix --split`.",
)
@transform_options
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Frames per second (a GIF rounds its delays to 1/100 s).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="video.mp4",
    show_default=True,
    help="Output file: .mp4 (H.264, imageio-ffmpeg) or .gif (Pillow).",
)
@common.device_option
@common.library_errors
def video(
    network,
    seeds,
    grid,
    frames_per_seed,
    kind,
    space,
    loop,
    truncation_psi,
    truncation_cutoff,
    noise_mode,
    class_idx,
    fine_seeds,
    split,
    translate,
    rotate,
    fps,
    out,
    device,
):
    """Render a latent interpolation video: each grid cell sweeps smoothly through its key seeds,
    and frame i x F (F = --frames-per-seed) of a cell is `stylegen sample`'s image of its i-th key
    seed. The layout is NVIDIA's gen_video.py: --seeds 0-31 --grid 4x2 gives every cell 4 keys
    (cell 0: seeds 0-3, cell 1: seeds 4-7, ...).

    Frames are rendered and encoded one at a time (memory does not grow with the video's length).
    See docs/video.md.
    """
    import stylegen
    from stylegen.editing.video import VideoConfig, render_frames
    from stylegen.formats.video_files import open_video, video_format

    try:
        video_format(out)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--out'") from e
    _check_split_given(fine_seeds)
    cfg = VideoConfig(  # its InputErrors (seed count vs grid, fine seed count) are one-line errors
        seeds=tuple(seeds),
        cols=grid[0],
        rows=grid[1],
        frames_per_seed=frames_per_seed,
        kind=kind,
        space=space,
        loop=loop,
        truncation_psi=truncation_psi,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
        fine_seeds=None if fine_seeds is None else tuple(fine_seeds),
        split=split,
    )
    device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path)
    _check_transform_options(G, translate, rotate)
    if fine_seeds is not None:
        _check_split(G, split)
    G = G.to(device).freeze()
    if translate is not None or rotate is not None:
        G.synthesis.set_input_transform(translate or (0.0, 0.0), rotate or 0.0)
    c = common.class_labels(G, class_idx, 1, device)
    bar = common.progress(cfg.num_frames, f"Rendering {cfg.num_frames} frames", show=True)
    with open_video(out, fps) as writer, bar:
        for frame in render_frames(G, cfg, c):
            writer.append(frame)
            bar.update(1)
    click.echo(f"Wrote {out}: {cfg.num_frames} frames of {cfg.cols}x{cfg.rows} cells, {cfg.num_keys} key seeds each")


def _check_split_given(fine_seeds) -> None:
    """--split alone would be silently ignored: it only chooses what sweeps in a mixing video."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    if fine_seeds is None and ctx.get_parameter_source("split") == ParameterSource.COMMANDLINE:
        raise click.BadParameter("only a style-mixing video has a split: add --fine-seeds", param_hint="'--split'")


def _check_split(G, split: str) -> None:
    from stylegen.editing import mixing

    try:
        mixing.select(split, G)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--split'") from e
