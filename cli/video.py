"""`stylegen video`: a looping latent-interpolation or editing-sweep video (MP4 or GIF), as a grid of cells."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from stylegen.cli import common
from stylegen.cli.sample import (
    WS_FILE,
    FileRows,
    _check_transform_options,
    check_one_source,
    given_options,
    load_edits,
    transform_options,
)


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


class EditDirection(click.ParamType):
    """'FILE:K': a directions file of `stylegen directions` and a direction index K."""

    name = "FILE:K"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        path, _, k = str(value).rpartition(":")  # FILE may hold colons (a Windows drive)
        if not path or not k.isdigit():
            self.fail(f"{value!r}: expected FILE:K with a direction index K >= 0, e.g. 'dirs.npz:0'", param, ctx)
        if not Path(path).is_file():
            self.fail(f"{value!r}: no such file {path!r}", param, ctx)
        return path, int(k)


@click.command("video", short_help="Looping interpolation or editing video (MP4 / GIF).")
@common.network_option
@click.option(
    "--seeds",
    type=common.SEEDS,
    default=None,
    help="Key seeds: cell k of the grid sweeps through the k-th run of len(seeds) / (cols x rows) of them. "
    "With --edit: one seed per cell.",
)
@click.option(
    "--ws",
    "ws_file",
    type=WS_FILE,
    default=None,
    metavar="FILE",
    help="With --edit, instead of --seeds: the cells' ws are the rows of a ws file (`sample --save-ws`, "
    "`project`), one per cell, as stored (no --trunc, --trunc-cutoff, --class).",
)
@click.option(
    "--edit",
    type=EditDirection(),
    default=None,
    help="Editing video: every cell moves along direction K of a directions file (`stylegen directions`), "
    "strength S sin(2 pi i / N) at frame i of N = 4 x --frames-per-seed, after truncation.",
)
@click.option(
    "--edit-strength",
    type=common.FiniteFloat("S", "expected a finite strength > 0, e.g. 3", positive=True),
    default=3.0,
    show_default=True,
    help="With --edit: S, the largest strength (frames 0 -> +S -> 0 -> -S -> 0).",
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
    help="Frames from one key seed to the next (with --edit: from strength 0 to S, a quarter period).",
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
    help="Wrap from the last key back to the first (K x F frames), or stop on the last key ((K-1) x F + 1). "
    "With --edit: 4 x F frames, or 4 x F + 1 ending on strength 0.",
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
    ws_file,
    edit,
    edit_strength,
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

    With --edit FILE:K, an editing video instead: each cell holds one seed (or one row of --ws
    FILE) and moves along SeFa direction K with strength S sin(2 pi i / 4F) (S = --edit-strength),
    so frame 0 is `sample`'s image and frame F is `sample --edit FILE:K:S`'s.

    Frames are rendered and encoded one at a time (memory does not grow with the video's length).
    See docs/video.md.
    """
    from stylegen.editing.video import EditSweep, VideoConfig
    from stylegen.formats.video_files import open_video, video_format

    try:
        video_format(out)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--out'") from e
    _check_edit_given(edit, ws_file)
    check_one_source(seeds, ws_file)
    device = common.resolve_device(device)
    if edit is None:
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
        frames = _interpolation_frames(network, cfg, class_idx, translate, rotate, device)
        num_frames = cfg.num_frames
        what = f"{cfg.num_keys} key seeds each"
    else:
        _check_edit_options()
        sweep = EditSweep(
            k=edit[1],
            strength=edit_strength,
            frames_per_seed=frames_per_seed,
            cols=grid[0],
            rows=grid[1],
            loop=loop,
            noise_mode=noise_mode,
        )
        if seeds is not None:
            sweep.check_bases(len(seeds), "seed(s) in --seeds")
        frames = _sweep_frames(
            network,
            sweep,
            edit[0],
            seeds,
            ws_file,
            truncation_psi,
            truncation_cutoff,
            class_idx,
            translate,
            rotate,
            device,
        )
        num_frames = sweep.num_frames
        what = f"direction {edit[1]} of {edit[0]} swept to +-{edit_strength:g}"
    bar = common.progress(num_frames, f"Rendering {num_frames} frames", show=True)
    with open_video(out, fps) as writer, bar:
        for frame in frames:
            writer.append(frame)
            bar.update(1)
    click.echo(f"Wrote {out}: {num_frames} frames of {grid[0]}x{grid[1]} cells, {what}")


def _interpolation_frames(network, cfg, class_idx, translate, rotate, device):
    """The interpolation video's frames, streamed (`render_frames`)."""
    from stylegen.editing.video import render_frames

    G, _ = _load(network, translate, rotate)
    if cfg.fine_seeds is not None:
        _check_split(G, cfg.split)
    G = _ready(G, translate, rotate, device)
    return render_frames(G, cfg, common.class_labels(G, class_idx, 1, device))


def _sweep_frames(
    network, sweep, directions, seeds, ws_file, truncation_psi, truncation_cutoff, class_idx, translate, rotate, device
):
    """The editing video's frames, streamed (`render_sweep`): direction `sweep.k` of the file
    `directions` (checked against the network as `sample --edit`), from the seeds' truncated ws
    or the ws file's rows as stored."""
    from stylegen.editing.video import render_sweep

    G, path = _load(network, translate, rotate)
    d = load_edits([(directions, sweep.k, sweep.strength)], G, path)[0][0]
    G = _ready(G, translate, rotate, device)
    if ws_file is not None:
        base = FileRows(G, ws_file, path).all_ws  # WsFileError unless it fits G
        sweep.check_bases(len(base), f"ws row(s) in {ws_file}")
    else:
        base = _seed_ws(G, seeds, truncation_psi, truncation_cutoff, common.class_labels(G, class_idx, 1, device))
    return render_sweep(G, base, d, sweep)


def _load(network, translate, rotate):
    """(the trainable generator, its file), checked against --translate / --rotate."""
    import stylegen

    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path)
    _check_transform_options(G, translate, rotate)
    return G, path


def _ready(G, translate, rotate, device):
    """G frozen on the device, with its input transform set."""
    G = G.to(device).freeze()
    if translate is not None or rotate is not None:
        G.synthesis.set_input_transform(translate or (0.0, 0.0), rotate or 0.0)
    return G


def _seed_ws(G, seeds, truncation_psi, truncation_cutoff, c):
    """An editing video's base ws [cells, num_ws, w_dim] from seeds: mapped and truncated, as `sample`."""
    import torch

    from stylegen.editing.mixing import ws_from_seeds

    with torch.inference_mode():
        return ws_from_seeds(G, seeds, truncation_psi, truncation_cutoff, c)


def _check_edit_given(edit, ws_file) -> None:
    """--ws and --edit-strength belong to editing videos; without --edit they would be ignored."""
    if edit is not None:
        return
    if ws_file is not None:
        raise click.BadParameter(
            "an interpolation video sweeps through seeds; a ws file is for an editing video: add --edit FILE:K",
            param_hint="'--ws'",
        )
    if given_options(edit_strength="--edit-strength"):
        raise click.BadParameter(
            "only an editing video has a strength: add --edit FILE:K", param_hint="'--edit-strength'"
        )


def _check_edit_options() -> None:
    """An editing video moves one ws per cell along a direction: the interpolation and mixing
    options have nothing to act on."""
    given = given_options(fine_seeds="--fine-seeds", split="--split", kind="--kind", space="--space")
    if given:
        raise click.BadParameter(
            f"an editing video (--edit) moves each cell's ws along a direction; {given[0]} is for "
            "interpolation videos: leave it out",
            param_hint=f"'{given[0]}'",
        )


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
