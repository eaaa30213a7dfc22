"""Native plugins for stylegen's fused ops: lazy, cached ninja builds of the CPU and CUDA kernels.

Both plugins are compiled from the same kernel core (`include/*_core.h`) and export the same
functions, so one autograd Function in `stylegen.ops` serves both:

    upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain) -> Tensor
    upfirdn2d_out_size(in_size, up, down, pad0, pad1, taps) -> int
    bias_act(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp) -> Tensor
    filtered_lrelu(x, fu, fd, b, up, down, padx0, padx1, pady0, pady1, gain, slope, clamp, flip) -> Tensor

Nothing is compiled at import. `load_plugin('cpu' | 'cuda')` builds on first use with
`torch.utils.cpp_extension.load` (ninja), in `TORCH_EXTENSIONS_DIR` (torch's default cache when
unset), under a name that carries a hash of the sources, headers, flags and torch version (for
CUDA also the architecture list and the visible GPUs' compute capabilities): a changed source,
a new torch or another GPU gets a fresh build, an unchanged one is reused. The outcome,
success or failure, is remembered for the life of the process, so a failed build is never retried
on every call.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parent
SOURCES = {
    "cpu": ["cpu/ops_cpu.cpp", "cpu/winograd_cpu.cpp", "cpu/gemm_cpu.cpp"],
    "cuda": ["cuda/ops_cuda.cpp", "cuda/ops_cuda.cu"],
}
# -ffp-contract=off: no silent a*b+c -> fma, so the CPU plugin rounds like the strict CUDA build.
# No -march=native: the cached binary must run on any x86-64 it is copied to.
# -fopenmp: at::parallel_for is a header template that runs serially unless the extension itself
# is compiled with OpenMP (torch's OpenMP backend); the runtime is the libgomp torch already loads.
# -fno-trapping-math: lets gcc compute both sides of a select (lrelu's x * alpha, the clamp) and
# so vectorize bias_act (20x faster); values are unchanged, only FP exception flags may differ.
# -std=c++20: torch >= 2.10 headers refuse older standards (#error C++20 or later ...).
CPU_CFLAGS = ["-O3", "-std=c++20", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]
CPU_LDFLAGS = ["-fopenmp"]
CUDA_CFLAGS = ["-O3", "-std=c++20"]
# STYLEGEN_CUDA_STRICT=1: no fused multiply-add, so linear/relu/lrelu bias_act and upfirdn2d
# should match the CPU plugin bit for bit (both sum a pixel's taps in the same order).
CUDA_STRICT_FLAGS = ["--fmad=false"]
# Architecture used when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset (a compile check:
# the CI machine has no GPU); with a GPU the default is its own capability (cuda_arch_list).
DEFAULT_CUDA_ARCH = "9.0"


class PluginUnavailable(RuntimeError):
    """The plugin cannot be built or imported here; the message says why."""


_lock = threading.Lock()
_results: dict[str, ModuleType | PluginUnavailable] = {}


def headers() -> list[Path]:
    return sorted((ROOT / "include").glob("*.h"))


def cuda_strict() -> bool:
    return os.environ.get("STYLEGEN_CUDA_STRICT", "0") not in ("", "0")


def build_flags(kind: str) -> tuple[list[str], list[str]]:
    """(C++ flags, nvcc flags) for a plugin kind."""
    if kind == "cpu":
        return CPU_CFLAGS, []
    return CUDA_CFLAGS, CUDA_CFLAGS + (CUDA_STRICT_FLAGS if cuda_strict() else [])


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capability (major, minor) of each visible GPU, in device order; [] without one."""
    if not torch.cuda.is_available():
        return []
    return [tuple(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]


def cuda_arch_list() -> str:
    """The TORCH_CUDA_ARCH_LIST a CUDA build compiles for, after defaulting.

    $TORCH_CUDA_ARCH_LIST when set (other than 'native'); else torch's own default, applied here so
    that the build and the cache key see the same list: each visible GPU's capability, clamped to
    the newest architecture this torch ships kernels for, sorted, '+PTX' on the newest; else
    DEFAULT_CUDA_ARCH (no GPU: a compile check).
    """
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env and env != "native":
        return env
    caps = gpu_capabilities()
    if not caps:
        return DEFAULT_CUDA_ARCH
    shipped = [int(m.group(1)) for a in torch.cuda.get_arch_list() if (m := re.match(r"sm_(\d+)", a))]
    newest = max(((sm // 10, sm % 10) for sm in shipped), default=None)
    archs = sorted({min(cap, newest) if newest else cap for cap in caps})
    names = [f"{major}.{minor}" for major, minor in archs]
    return ";".join(names[:-1] + [names[-1] + "+PTX"])


def fingerprint(kind: str) -> str:
    """Hash of everything that changes the binary: sources, headers, flags, torch/CUDA version.

    A CUDA build also hashes the effective architecture list (cuda_arch_list) and the distinct
    compute capabilities of the visible GPUs, so a cache shared between machines (an NFS home, a copied
    TORCH_EXTENSIONS_DIR) never hands one GPU a binary built for another.
    """
    h = hashlib.sha256()
    for path in [ROOT / s for s in SOURCES[kind]] + headers():
        h.update(path.name.encode())
        h.update(path.read_bytes())
    cflags, nvflags = build_flags(kind)
    ldflags = CPU_LDFLAGS if kind == "cpu" else []
    h.update(repr((cflags, nvflags, ldflags, torch.__version__, torch.version.cuda)).encode())
    if kind == "cuda":
        h.update(repr((cuda_arch_list(), sorted(set(gpu_capabilities())))).encode())
    return h.hexdigest()[:16]


def plugin_name(kind: str) -> str:
    return f"stylegen_{kind}_{fingerprint(kind)}"


def find_cuda_home() -> Path | None:
    """CUDA toolkit root: $CUDA_HOME / $CUDA_PATH, else /usr/local/cuda, else nvcc's parent.

    torch guesses from `which nvcc`, which is wrong when nvcc is a wrapper script outside the
    toolkit (as on our CI machine); a toolkit root must contain bin/nvcc and include/cuda.h.
    """
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for c in candidates:
        if c and (Path(c) / "bin" / "nvcc").exists() and (Path(c) / "include" / "cuda.h").exists():
            return Path(c)
    return None


def nvcc_version(cuda_home: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(cuda_home / "bin" / "nvcc"), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def _cpp_extension() -> ModuleType:
    """torch.utils.cpp_extension, imported without its import-time warning "No CUDA runtime is
    found, using CUDA_HOME=..." on GPU-less machines (we find CUDA_HOME ourselves, and a CPU
    user of `stylegen sample` should not see it)."""
    import logging

    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


def check_toolchain(kind: str) -> None:
    """Raise PluginUnavailable naming the missing tool; return when a build can be tried."""
    cpp_extension = _cpp_extension()

    if not cpp_extension.is_ninja_available():
        raise PluginUnavailable("ninja is not installed (pip install ninja)")
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise PluginUnavailable(f"no C++ compiler: '{cxx}' is not on PATH (install g++ or set CXX)")
    if kind != "cuda":
        return
    if torch.version.cuda is None:
        raise PluginUnavailable(f"torch {torch.__version__} is a CPU-only build; a CUDA build of torch is needed")
    home = find_cuda_home()
    if home is None:
        raise PluginUnavailable("no CUDA toolkit found (nvcc): set CUDA_HOME to a directory with bin/nvcc")
    version = nvcc_version(home)
    if version is None:
        raise PluginUnavailable(f"{home}/bin/nvcc does not report its version")
    if version.split(".")[0] != torch.version.cuda.split(".")[0]:
        raise PluginUnavailable(
            f"CUDA version mismatch: nvcc {version} at {home}, torch built with CUDA {torch.version.cuda}"
        )


def _configure_cuda_env() -> None:
    cpp_extension = _cpp_extension()

    home = find_cuda_home()
    os.environ.setdefault("CUDA_HOME", str(home))
    # cpp_extension resolved CUDA_HOME at its import; correct it if it guessed a non-toolkit dir.
    cpp_extension.CUDA_HOME = str(home)
    # The list the fingerprint hashed, made explicit: torch then compiles for exactly that list
    # (and does not warn that TORCH_CUDA_ARCH_LIST is unset).
    os.environ["TORCH_CUDA_ARCH_LIST"] = cuda_arch_list()


def build_dir(kind: str) -> Path:
    """$TORCH_EXTENSIONS_DIR/<plugin_name(kind)> (created if missing, as torch does)."""
    return Path(_cpp_extension()._get_build_directory(plugin_name(kind), verbose=False))


def _build(kind: str, verbose: bool) -> ModuleType:
    cpp_extension = _cpp_extension()

    name = plugin_name(kind)
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    if (build_dir / f"{name}.so").is_file():
        # The name hashes the sources, flags and torch version: a finished build of it is current,
        # and importing it needs no compiler, ninja or nvcc.
        try:
            return cpp_extension._import_module_from_library(name, str(build_dir), True)
        except ImportError:
            pass  # a broken or partial binary: rebuild it below
    check_toolchain(kind)
    if kind == "cuda":
        _configure_cuda_env()
    cflags, nvflags = build_flags(kind)
    try:
        return cpp_extension.load(
            name=name,
            sources=[str(ROOT / s) for s in SOURCES[kind]],
            extra_cflags=list(cflags),  # load() appends to the lists it is given
            extra_cuda_cflags=list(nvflags),
            extra_ldflags=list(CPU_LDFLAGS) if kind == "cpu" else [],
            extra_include_paths=[str(ROOT / "include")],
            build_directory=str(build_dir),
            verbose=verbose,
        )
    except Exception as e:  # compiler errors arrive as RuntimeError/OSError/ImportError
        last = str(e).strip().splitlines()[-1:] or ["unknown error"]
        raise PluginUnavailable(
            f"building the {kind} plugin failed ({last[0][:300]}); full log: "
            f"python -m stylegen.cuda_ops --verbose; build dir {build_dir}"
        ) from e


def load_plugin(kind: str, verbose: bool = False) -> ModuleType:
    """Build on first use and import the 'cpu' or 'cuda' plugin; raise PluginUnavailable.

    The outcome is cached for the process: a failure is raised again without a new build.
    """
    if kind not in SOURCES:
        raise ValueError(f"unknown plugin kind {kind!r}; expected 'cpu' or 'cuda'")
    with _lock:
        result = _results.get(kind)
        if result is None:
            try:
                result = _build(kind, verbose)
                for variable in CPU_SETTINGS if kind == "cpu" else ():
                    if os.environ.get(variable):
                        _cpu_setting(result, variable, os.environ[variable])
            except PluginUnavailable as e:
                result = e
            _results[kind] = result
    if isinstance(result, PluginUnavailable):
        raise result
    return result


# The CPU plugin's run-time choices, read when it is loaded: variable -> the plugin's setter.
#   STYLEGEN_CPU_ISA=avx512|avx2|base: run its row loops (filtered_lrelu's, the Winograd transforms)
#     as on a CPU with at most that vector width (same bits; benchmarks standing in for another CPU).
#   STYLEGEN_CPU_GEMM=auto|plugin|torch: the GEMM of its matrix products (the StyleGAN3 inference
#     form's Winograd convolutions and 1x1 layers): its own AVX2/FMA one or torch's BLAS; auto (the
#     default) is its own on CPUs that are not Intel's, where MKL's fast kernels are not assured
#     (cuda_ops/cpu/gemm_cpu.cpp).
CPU_SETTINGS = {"STYLEGEN_CPU_ISA": "set_row_isa", "STYLEGEN_CPU_GEMM": "set_cpu_gemm"}


def _cpu_setting(plugin: ModuleType, variable: str, value: str) -> None:
    """Apply one of CPU_SETTINGS; a value the plugin refuses (unknown, or beyond this CPU) is an
    error naming the variable."""
    try:
        getattr(plugin, CPU_SETTINGS[variable])(value.strip().lower())
    except RuntimeError as e:
        raise ValueError(f"{variable}={value}: {str(e).splitlines()[0]}") from None


def loaded(kind: str) -> ModuleType | None:
    """The plugin if it has already been built in this process, else None (never builds)."""
    result = _results.get(kind)
    return result if isinstance(result, ModuleType) else None


def forget() -> None:
    """Drop the cached outcomes (tests use it to exercise the build logic again)."""
    with _lock:
        _results.clear()
    importlib.invalidate_caches()
