"""Side-by-side runs against NVIDIA's stylegan2-ada-pytorch (and stylegan3), imported from a checkout, never copied.

Every peer number in docs/benchmarks.md comes from the same process as ours: NVIDIA's networks are
imported from `--nvidia-repo DIR` (their `training.networks`, `training.loss`, `torch_utils`,
`dnnlib`; on the CPU their custom ops run their reference path), our networks get their weights
(parameter names are identical), the outputs are checked to agree, and the two are timed
alternating (A B A B ...) so a burst of load from other processes hits both alike. StyleGAN3
(bench/sg3.py) comes from a stylegan3 checkout via `import_nvidia_sg3`, its weights reach ours
through a pickle read by our loader.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Callable

import torch

from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig


def add_nvidia_option(
    parser: argparse.ArgumentParser,
    required: bool = True,
    help_text: str = "checkout of NVlabs/stylegan2-ada-pytorch to import the peer from (e.g. /work/nvidia-sg2ada)",
) -> None:
    parser.add_argument("--nvidia-repo", type=Path, required=required, metavar="DIR", help=help_text)


def fail(message: str) -> None:
    """One line `Error: ...` on stderr, exit status 2 (no traceback)."""
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(2)


def apply_shims() -> None:
    """Runtime shims for running their 2021 code under a current torch, without touching their files."""
    # dnnlib.util imports requests only for downloading pickles by URL, which the bench never does.
    try:
        importlib.import_module("requests")
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    # Their conv2d_gradfix / grid_sample_gradfix warn that they do not know this torch version;
    # on the CPU those ops are never used (they fall back to torch's own conv), so the warning is noise.
    warnings.filterwarnings("ignore", message=r".*conv2d_gradfix.*")
    warnings.filterwarnings("ignore", message=r".*grid_sample_gradfix.*")


def import_nvidia(repo: Path) -> types.SimpleNamespace:
    """Their `training.networks`, `training.loss` and `torch_utils.misc`, imported from `repo`."""
    if not (repo / "training" / "networks.py").is_file() or not (repo / "torch_utils").is_dir():
        fail(f"--nvidia-repo {repo}: not a stylegan2-ada-pytorch checkout (no training/networks.py, torch_utils/)")
    apply_shims()
    sys.path.insert(0, str(repo.resolve()))
    try:
        networks = importlib.import_module("training.networks")
        loss = importlib.import_module("training.loss")
        misc = importlib.import_module("torch_utils.misc")
    except ImportError as e:
        fail(f"--nvidia-repo {repo}: cannot import NVIDIA's code: {e}")
    return types.SimpleNamespace(networks=networks, loss=loss, misc=misc, repo=repo.resolve())


def shim_pkg_resources() -> None:
    """Stand-ins for what their stylegan3 code imports from packages a current venv may lack.

    Their conv2d_gradfix / grid_sample_gradfix import `pkg_resources.parse_version` (setuptools,
    absent here): packaging's parser compares versions the same way. dnnlib.util imports
    `distutils.util.strtobool` (gone from Python 3.12), used only by command-line helpers.
    """
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        from packaging.version import parse

        shim = types.ModuleType("pkg_resources")
        shim.parse_version = parse
        sys.modules["pkg_resources"] = shim
    try:
        importlib.import_module("distutils.util")
    except ImportError:
        distutils, util = types.ModuleType("distutils"), types.ModuleType("distutils.util")
        util.strtobool = lambda v: {"y": 1, "yes": 1, "t": 1, "true": 1, "on": 1, "1": 1}.get(str(v).lower(), 0)
        distutils.util = util
        sys.modules.update({"distutils": distutils, "distutils.util": util})


def import_nvidia_sg3(repo: Path) -> types.SimpleNamespace:
    """Their StyleGAN3 `training.networks_stylegan3` and `torch_utils.ops.filtered_lrelu`, from `repo`.

    Their stylegan2-ada-pytorch and stylegan3 checkouts both define the top-level packages
    `training`, `torch_utils` and `dnnlib`, so one process can import only one of them.
    """
    if not (repo / "training" / "networks_stylegan3.py").is_file() or not (repo / "torch_utils").is_dir():
        fail(f"--nvidia-repo {repo}: not a stylegan3 checkout (no training/networks_stylegan3.py, torch_utils/)")
    loaded = sys.modules.get("torch_utils")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(repo.resolve())):
        fail(f"--nvidia-repo {repo}: another NVIDIA checkout's torch_utils is already imported ({loaded.__file__})")
    apply_shims()
    shim_pkg_resources()
    sys.path.insert(0, str(repo.resolve()))
    try:
        networks = importlib.import_module("training.networks_stylegan3")
        filtered_lrelu = importlib.import_module("torch_utils.ops.filtered_lrelu")
    except ImportError as e:
        fail(f"--nvidia-repo {repo}: cannot import NVIDIA's stylegan3 code: {e}")
    return types.SimpleNamespace(networks=networks, filtered_lrelu=filtered_lrelu, repo=repo.resolve())


def nvidia_generator_kwargs(cfg: GeneratorConfig) -> dict:
    """NVIDIA Generator constructor arguments for our config (fp32: no fp16 layers)."""
    return {
        "z_dim": cfg.z_dim,
        "c_dim": cfg.c_dim,
        "w_dim": cfg.w_dim,
        "img_resolution": cfg.img_resolution,
        "img_channels": cfg.img_channels,
        "mapping_kwargs": {
            "num_layers": cfg.mapping_layers,
            "lr_multiplier": cfg.mapping_lr_multiplier,
            "w_avg_beta": cfg.w_avg_beta,
        },
        "synthesis_kwargs": {
            "channel_base": cfg.channel_base,
            "channel_max": cfg.channel_max,
            "num_fp16_res": 0,
            "conv_clamp": cfg.conv_clamp,
            "resample_filter": list(cfg.resample_filter),
        },
    }


def generator_pair(nv: types.SimpleNamespace, cfg: GeneratorConfig, seed: int = 0) -> tuple:
    """(NVIDIA's Generator, ours) holding the same weights: NVIDIA's initialisation copied into ours."""
    torch.manual_seed(seed)
    G_nv = nv.networks.Generator(**nvidia_generator_kwargs(cfg))
    G = Generator(cfg)
    G.load_state_dict(G_nv.state_dict(), strict=True)  # raises on any name or shape mismatch
    return G_nv, G


def discriminator_pair(nv: types.SimpleNamespace, cfg: DiscriminatorConfig, seed: int = 0) -> tuple:
    """(NVIDIA's resnet Discriminator, ours) holding the same weights."""
    torch.manual_seed(seed)
    D_nv = nv.networks.Discriminator(
        c_dim=cfg.c_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        num_fp16_res=0,
        conv_clamp=cfg.conv_clamp,
        epilogue_kwargs={"mbstd_group_size": cfg.mbstd_group_size, "mbstd_num_channels": cfg.mbstd_num_channels},
    )
    D = Discriminator(cfg)
    D.load_state_dict(D_nv.state_dict(), strict=True)
    return D_nv, D


def check_close(name: str, a: torch.Tensor, b: torch.Tensor, tol: float = 1e-3) -> float:
    """Max abs difference of two outputs; exit 2 if above tol (then the timings compare nothing)."""
    err = float((a.detach().float() - b.detach().float()).abs().max())
    if not err <= tol:
        fail(f"{name}: ours differs from NVIDIA's by {err:.2e} (max abs) > {tol:g} on the same weights")
    return err


def alternate(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each function over `reps` rounds, run A B C A B C ... after `warmup` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    m = re.search(r"^Model name:\s*(.+)$", out, re.M)
    return m.group(1).strip() if m else "unknown CPU"


def isa() -> str:
    """The SIMD extensions that decide conv speed: avx2, avx512f, amx (from /proc/cpuinfo flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    flags = set(m.group(1).split()) if m else set()
    found = [f for f in ("avx2", "avx512f") if f in flags]
    if any(f.startswith("amx") for f in flags):
        found.append("amx")
    return " ".join(found) or "none of avx2/avx512f/amx"


def machine_line() -> str:
    """CPU model, ISA, cores, torch version, threads, date: recorded with every table."""
    return (
        f"CPU: {cpu_model()} ({os.cpu_count()} cores visible), ISA: {isa()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, date {datetime.date.today().isoformat()}"
    )


def command_line(script: str) -> str:
    """The exact command that produced a table (what to rerun on a quiet machine)."""
    return shlex.join(["python", script, *sys.argv[1:]])


def load_average() -> float:
    """1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def load_note(load_before: float) -> str:
    """What the load average read just before the bench started says about the machine."""
    cores = os.cpu_count() or 1
    text = f"1-min load average just before the run: {load_before:.2f} on {cores} cores"
    if load_before > 0.5 * cores:
        return (
            f"{text}: measured while the machine was NOT idle (other jobs on the same cores), so absolute "
            "numbers are low and noisy; the side-by-side ratios less so, since the paths alternate."
        )
    return f"{text} (otherwise idle)."


def write_section(path: Path, text: str) -> None:
    """Replace the section of `path` that starts with text's first line ('## ...'), or append it."""
    head = text.splitlines()[0]
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(head)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda m: text.rstrip("\n") + "\n\n", old)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
