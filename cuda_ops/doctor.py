"""Can this machine build and run the native ops, and if not, why not.

`python -m stylegen.cuda_ops [--verbose] [--no-cuda] [--require-cuda]` (also `stylegen doctor`)
prints the toolchain (python, torch, ninja, C++ compiler, nvcc and CUDA_HOME, the build cache),
then builds and loads the cpu and cuda plugins and says for each OK (with the time and whether
the cached build was reused) or FAILED with the reason. `--verbose` adds each plugin's build
directory, flags, architectures and the compiler commands of its build (build.ninja), and the
compiler's output of a build.

Exit status 1 when an expected plugin fails: the CPU plugin always; the CUDA plugin when a GPU
is visible, STYLEGEN_OPS=cuda, or --require-cuda (a compile check on a machine without a GPU).
A CUDA plugin that fails where no GPU would use it is reported, not an error.
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
from typing import Callable

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
    cpp_extension = cuda_ops._cpp_extension()  # without its wrong-CUDA_HOME warning on GPU-less machines
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
    notes: tuple[str, ...] = ()  # lines after the verdict (the CPU plugin's GEMM choice)

    def lines(self, verbose: bool = False) -> list[str]:
        head = _label(f"{self.kind} plugin")
        if self.ok:
            how = "cached build reused" if self.cached else "built"
            note = "; no GPU here to run it" if self.kind == "cuda" and not torch.cuda.is_available() else ""
            return [f"{head}OK ({how}, {self.seconds:.2f} s{note}) {self.path}".rstrip(), *self.notes]
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
    file = getattr(module, "__file__", None)
    if not file:  # not a file-backed module (tests stand one in): nothing to date
        return PluginCheck(kind, True, seconds)
    cached = Path(file).stat().st_mtime < start  # not rewritten by this build
    return PluginCheck(kind, True, seconds, cached=cached, path=file, notes=_gemm_note(module))


def _gemm_note(module) -> tuple[str, ...]:
    """Which GEMM the CPU plugin's StyleGAN3 products use (torch's BLAS or its own), and why."""
    if not hasattr(module, "cpu_gemm"):
        return ()
    if os.environ.get("STYLEGEN_CPU_GEMM"):
        why = "set by STYLEGEN_CPU_GEMM"
    else:
        why = "auto: torch's BLAS on Intel CPUs, the plugin's own on others"
    return (_label("  cpu GEMM") + f"{module.cpu_gemm()} ({why})",)


# build.ninja variables that spell out the compiler commands of a build.
NINJA_VARS = ("cxx", "nvcc", "cflags", "post_cflags", "cuda_cflags", "cuda_post_cflags", "ldflags")


def build_details(kind: str) -> list[str]:
    """--verbose: what a build of `kind` uses (name, directory, flags, architectures, commands)."""
    cflags, nvflags = cuda_ops.build_flags(kind)
    directory = cuda_ops.build_dir(kind)
    lines = [
        _label("  name") + cuda_ops.plugin_name(kind),
        _label("  build dir") + str(directory),
        _label("  C++ flags") + " ".join(cflags),
    ]
    if kind == "cuda":
        caps = ", ".join(f"{major}.{minor}" for major, minor in cuda_ops.gpu_capabilities()) or "no GPU visible"
        lines += [
            _label("  nvcc flags") + " ".join(nvflags) + (" (STYLEGEN_CUDA_STRICT)" if cuda_ops.cuda_strict() else ""),
            _label("  archs") + f"{cuda_ops.cuda_arch_list()} (GPU capabilities: {caps})",
        ]
    ninja = directory / "build.ninja"
    if not ninja.is_file():
        return lines + [_label("  ninja file") + "none yet (nothing built under this name)"]
    lines.append(_label("  ninja file") + str(ninja))
    for line in ninja.read_text(errors="replace").splitlines():
        key, _, value = line.partition(" = ")
        if key in NINJA_VARS and value.strip():
            lines.append(f"    {key} = {value}")
    return lines


def expected(cuda: bool = True, require_cuda: bool = False) -> dict[str, str]:
    """{kind: why} for the plugins whose failure fails the doctor."""
    need = {"cpu": "always expected"}
    if not cuda:
        return need
    if require_cuda:
        need["cuda"] = "--require-cuda"
    elif os.environ.get("STYLEGEN_OPS") == "cuda":
        need["cuda"] = "STYLEGEN_OPS=cuda"
    elif torch.cuda.is_available():
        need["cuda"] = "a GPU is visible"
    return need


def report(verbose: bool = False, cuda: bool = True) -> list[str]:
    """The full report as lines (environment, then one verdict per plugin)."""
    lines = environment()
    for kind in ["cpu", "cuda"] if cuda else ["cpu"]:
        check = check_plugin(kind, verbose)
        lines += check.lines(verbose) + (build_details(kind) if verbose else [])
    if not cuda:
        lines.append(_label("cuda plugin") + "skipped (--no-cuda)")
    return lines


def run(
    verbose: bool = False, cuda: bool = True, require_cuda: bool = False, echo: Callable[[str], None] | None = None
) -> int:
    """Print the report line by line as it is made; 0 when every expected plugin works, else 1."""
    echo = echo or (lambda line: print(line, flush=True))
    for line in environment():
        echo(line)
    need = expected(cuda, require_cuda)
    failed = []
    for kind in ["cpu", "cuda"] if cuda else ["cpu"]:
        echo(_label(f"{kind} plugin") + "building or loading ...")
        check = check_plugin(kind, verbose)
        for line in check.lines(verbose) + (build_details(kind) if verbose else []):
            echo(line)
        if not check.ok and kind in need:
            failed.append(f"{kind} plugin ({need[kind]}): {check.reason}")
    if not cuda:
        echo(_label("cuda plugin") + "skipped (--no-cuda)")
    if failed:
        echo("doctor: FAILED: " + "; ".join(failed))
        return 1
    echo("doctor: OK (" + ", ".join(f"{kind} plugin works" for kind in need) + ")")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylegen.cuda_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--verbose", action="store_true", help="show build dirs, flags, compiler commands and compiler output"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-cuda", action="store_true", help="check the CPU plugin only")
    which.add_argument(
        "--require-cuda", action="store_true", help="fail when the CUDA plugin cannot be built, even with no GPU"
    )
    args = parser.parse_args(argv)
    return run(args.verbose, cuda=not args.no_cuda, require_cuda=args.require_cuda)
