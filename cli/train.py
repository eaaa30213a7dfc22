"""`stylegen train` and `stylegen dataset`."""

from __future__ import annotations

import sys
import time

import click

from stylegen.cli.common import CLIError, library_errors
from stylegen.training.config import PRESETS, TrainConfig
from stylegen.training.dataset import RESIZE_MODES


def _progress_line(total_kimg: float):
    """A one-line status on stderr: kimg, sec/kimg, losses, augment p, ETA."""
    state = {"last": 0.0, "start_kimg": None}

    def show(st, stats, elapsed):
        now = time.time()
        if state["start_kimg"] is None:  # a resumed run starts at the snapshot's kimg, not at 0
            state["start_kimg"] = st.kimg - st.cfg.batch_size / 1000
        if now - state["last"] < 1 and st.kimg < total_kimg:
            return
        state["last"] = now
        rate = elapsed / max(st.kimg - state["start_kimg"], 1e-9)
        eta = rate * max(total_kimg - st.kimg, 0)
        p = f" p {float(st.augment.p):.3f}" if st.augment is not None else ""
        losses = " ".join(
            f"{k[5:] if k.startswith('loss_') else k} {v:.3f}" for k, v in stats.items() if k.startswith("loss_")
        )
        line = (
            f"kimg {st.kimg:8.3f}/{total_kimg:g} | {rate:7.1f} s/kimg | {losses}{p} | "
            f"ETA {int(eta // 3600)}h{int(eta % 3600 // 60):02d}m{int(eta % 60):02d}s"
        )
        click.echo("\r" + line, nl=st.kimg >= total_kimg, err=True)

    return show


@click.command()
@click.option("--data", required=True, help="Folder (recursive) or zip of PNG/JPEG/WebP images.")
@click.option("--outdir", required=True, help="Run directory: snapshots, fakes PNGs, stats.jsonl, config.json.")
@click.option(
    "--cfg",
    "preset",
    type=click.Choice(sorted(PRESETS)),
    default="cpu32",
    show_default=True,
    help="Preset: network size and recipe (docs/training.md).",
)
@click.option(
    "--kimg",
    type=click.FloatRange(min=0, min_open=True),
    default=100,
    show_default=True,
    help="Train until this many thousand real images have been shown.",
)
@click.option("--batch", type=click.IntRange(min=1), help="Global minibatch (default: the preset's).")
@click.option(
    "--batch-gpu", type=click.IntRange(min=1), help="Images per process and round (default: batch / processes)."
)
@click.option(
    "--gamma", type=click.FloatRange(min=0), help="R1 weight (default: the preset's; StyleGAN3: res**2 / 32768)."
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate of G and D (default: the preset's)."
)
@click.option(
    "--dlr",
    type=click.FloatRange(min=0, min_open=True),
    help="Adam learning rate of D (default: --lr or the preset's).",
)
@click.option("--cbase", type=click.IntRange(min=1), help="Override the preset's channel_base.")
@click.option("--cmax", type=click.IntRange(min=1), help="Override the preset's channel_max.")
@click.option("--map-depth", type=click.IntRange(min=1), help="Override the preset's mapping layers.")
@click.option(
    "--aug",
    type=click.Choice(["ada", "fixed", "none"]),
    default="ada",
    show_default=True,
    help="Augmentation: adaptive p, fixed p (--aug-p), or none.",
)
@click.option("--aug-p", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Initial/fixed augment p.")
@click.option("--target", "ada_target", type=click.FloatRange(0, 1), default=0.6, show_default=True, help="ADA target.")
@click.option(
    "--ada-kimg",
    type=click.FloatRange(min=0, min_open=True),
    default=500,
    show_default=True,
    help="ADA speed: p can go 0 -> 1 in this many kimg (lower for short runs).",
)
@click.option("--cond", is_flag=True, help="Condition on the labels in the dataset's dataset.json.")
@click.option("--mirror", is_flag=True, help="Add x-flipped copies of the images.")
@click.option("--resize", type=click.Choice(RESIZE_MODES), help="Make wrongly-sized images square at --res.")
@click.option("--res", "resolution", type=click.IntRange(min=4), help="Training resolution (default: the images').")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images (counted) instead of failing.")
@click.option(
    "--snap",
    type=click.FloatRange(min=0, min_open=True),
    default=10,
    show_default=True,
    help="Snapshot every this many kimg.",
)
@click.option(
    "--keep", type=click.IntRange(min=0), default=3, show_default=True, help="Keep the newest K snapshots (0 = all)."
)
@click.option("--resume", help="Snapshot or NVIDIA pickle to continue from, or 'auto' (newest in --outdir).")
@click.option(
    "--freeze-d", type=click.IntRange(min=0), default=0, show_default=True, help="Freeze the first N D layers."
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto = cuda if available, else cpu.",
)
@click.option("--quiet", is_flag=True, help="No progress line.")
@library_errors
def train(device, quiet, kimg, **kw):
    """Train a StyleGAN2 (ADA recipe) or StyleGAN3 generator on an image folder or zip.

    Runs unchanged under torchrun for several processes (gloo on CPU, nccl on GPU).

    Example: stylegen train --data fashion.zip --outdir runs/fashion --cfg cpu32 --kimg 50

    StyleGAN3: --cfg stylegan3-t or stylegan3-r (NVIDIA's recipe; --resume takes their pickles),
    or stylegan3-t-cpu32 / stylegan3-r-cpu32 for small runs on a CPU.
    """
    from stylegen.training import distributed
    from stylegen.training.loop import TrainingDiverged
    from stylegen.training.loop import train as run

    cfg = TrainConfig(kimg=kimg, **kw)
    dist = distributed.init(device)
    try:
        st = run(cfg, dist, progress=None if quiet else _progress_line(kimg))
    except TrainingDiverged as e:
        click.echo(f"Error: training diverged: {e}", err=True)
        sys.exit(1)
    finally:
        distributed.shutdown(dist)
    if dist.main:
        click.echo(f"done: {st.kimg:.3f} kimg in {cfg.outdir}")


@click.command()
@click.argument("src")
@click.argument("dest")
@click.option("--resolution", type=click.IntRange(min=4), help="Output size (default: the images').")
@click.option("--resize", type=click.Choice(RESIZE_MODES), help="Make wrongly-sized images square.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images instead of failing.")
@click.option("--cond", is_flag=True, help="Carry the labels of SRC/dataset.json into DEST.")
@library_errors
def dataset(src, dest, resolution, resize, skip_bad, cond):
    """Prepare a training zip from a folder or zip: checked, resized, labels kept.

    Example: stylegen dataset photos/ photos64.zip --resolution 64 --resize center-crop
    """
    from stylegen.training.dataset import DatasetOptions, ImageDataset, write_zip

    if not dest.endswith(".zip"):
        raise CLIError(f"DEST {dest!r} must end in .zip")
    ds = ImageDataset(src, DatasetOptions(resolution=resolution, resize=resize, skip_bad=skip_bad, use_labels=cond))
    write_zip(ds, dest)
    skipped = f", skipped {len(ds.skipped)} unreadable" if ds.skipped else ""
    click.echo(f"wrote {dest}: {len(ds.names)} images {ds.resolution}x{ds.resolution}x{ds.channels}{skipped}")
