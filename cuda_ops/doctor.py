"""Can this machine build and run the native ops, and if not, why not.

`python -m stylegen.cuda_ops [--verbose] [--no-cuda]` (also `stylegen doctor`) prints the
toolchain (python, torch, ninja, C++ compiler, nvcc and CUDA_HOME, the build cache), then builds
and loads the cpu and cuda plugins and says for each OK (with the time and whether the cached
build was reused) or FAILED with the reason. Exit status 0 when the CPU plugin works.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegen import cuda_ops

DOCS = "docs/ops.md (Troubleshooting)"
ENV_VARS = ["STYLEGEN_OPS", "STYLEGEN_REQUIRE_EXT", "STYLEGEN_CUDA_STRICT", "TORCH_CUDA_ARCH_LIST", "CXX"]


def _label(name: str) -> str:
    return f"{name + ':':<14}"


def _first_line(cmd: list[str]) -> str | None:
    """First line of `cmd`'s output, or None when it cannot run."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (r.stdout or r.stderr).strip().splitlines()
    return lines[0] if r.returncode == 0 and lines else None


def _tool(name: str, version_flag: str = "--version") -> str:
    path = shutil.which(name)
    if path is None:
        return f"not found ('{name}' is not on PATH)"
    return f"{path} ({_first_line([path, version_flag]) or 'does not report a version'})"


def _extensions_dir() -> str:
    from torch.utils import cpp_extension

    env = os.environ.get("TORCH_EXTENSIONS_DIR")
    if env:
        return env
    return f"{cpp_extension.get_default_build_root()} (TORCH_EXTENSIONS_DIR unset: torch's default)"


def environment() -> list[str]:
    """One line per tool or setting that decides whether the plugins build."""
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    home = cuda_ops.find_cuda_home()
    if home is None:
        nvcc = "not found (set CUDA_HOME to a toolkit with bin/nvcc and include/cuda.h)"
    else:
        nvcc = f"{home / 'bin' / 'nvcc'} (release {cuda_ops.nvcc_version(home) or '?'})"
    lines = [
        _label("python") + f"{platform.python_version()} ({sys.executable})",
        _label("torch") + f"{torch.__version__}, built with CUDA {torch.version.cuda or 'none (CPU-only build)'}",
        _label("GPUs") + (", ".join(gpus) if gpus else "none visible"),
        _label("ninja") + _tool("ninja"),
        _label("C++ compiler") + _tool(os.environ.get("CXX", "c++")),
        _label("nvcc") + nvcc,
        _label("CUDA_HOME") + f"{home or 'not found'} (env: {os.environ.get('CUDA_HOME', 'unset')})",
        _label("build cache") + _extensions_dir(),
    ]
    lines += [_label(var) + os.environ[var] for var in ENV_VARS if os.environ.get(var)]
    return lines


@dataclass
class PluginCheck:
    kind: str
    ok: bool
    seconds: float
    cached: bool = False  # the binary already existed: loaded, not compiled
    path: str = ""
    reason: str = ""
    detail: str = ""  # the full build error (shown with --verbose)

    def lines(self, verbose: bool = False) -> list[str]:
        head = _label(f"{self.kind} plugin")
        if self.ok:
            how = "cached build reused" if self.cached else "built"
            note = "; no GPU here to run it" if self.kind == "cuda" and not torch.cuda.is_available() else ""
            return [f"{head}OK ({how}, {self.seconds:.2f} s{note}) {self.path}"]
        out = [f"{head}FAILED ({self.seconds:.1f} s): {self.reason}"]
        if verbose and self.detail:
            out += ["    " + line for line in self.detail.splitlines()]
        out.append(_label("") + f"see {DOCS}" + ("" if verbose else "; --verbose shows the compiler output"))
        return out


def check_plugin(kind: str, verbose: bool = False) -> PluginCheck:
    """Build (or reuse) and import one plugin, timing it."""
    start = time.time()
    try:
        module = cuda_ops.load_plugin(kind, verbose=verbose)
    except cuda_ops.PluginUnavailable as e:
        cause = e.__cause__
        return PluginCheck(kind, False, time.time() - start, reason=str(e), detail=str(cause) if cause else "")
    seconds = time.time() - start
    path = Path(module.__file__)
    cached = path.stat().st_mtime < start  # not rewritten by this build
    return PluginCheck(kind, True, seconds, cached=cached, path=str(path))


def report(verbose: bool = False, cuda: bool = True) -> list[str]:
    """The full report as lines (environment, then one verdict per plugin)."""
    lines = environment()
    for kind in ["cpu", "cuda"] if cuda else ["cpu"]:
        lines += check_plugin(kind, verbose).lines(verbose)
    if not cuda:
        lines.append(_label("cuda plugin") + "skipped (--no-cuda)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylegen.cuda_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="show the compiler output of the builds")
    parser.add_argument("--no-cuda", action="store_true", help="check the CPU plugin only")
    args = parser.parse_args(argv)
    for line in environment():
        print(line, flush=True)
    cpu_ok = False
    for kind in ["cpu"] if args.no_cuda else ["cpu", "cuda"]:
        print(_label(f"{kind} plugin") + "building or loading ...", flush=True)
        check = check_plugin(kind, args.verbose)
        for line in check.lines(args.verbose):
            print(line, flush=True)
        cpu_ok = cpu_ok or (kind == "cpu" and check.ok)
    if args.no_cuda:
        print(_label("cuda plugin") + "skipped (--no-cuda)")
    return 0 if cpu_ok else 1
