"""`stylegen doctor`: can this machine build and run the native ops, and if not, why not."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import click


@click.command("doctor", short_help="Check the toolchain for the native ops.")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show the full compiler output of the plugin builds.",
)
def doctor(verbose):
    """Report the toolchain (python, torch, ninja, C++ compiler, nvcc) and try to build and load
    the CPU and CUDA plugins, saying for each whether it works and why not.

    The first run compiles the plugins (a minute or two); later runs reuse the cached build.
    """
    try:
        from stylegen.cuda_ops import doctor as ops_doctor
    except ImportError:
        ops_doctor = None
    if ops_doctor is not None and hasattr(ops_doctor, "report"):
        text = ops_doctor.report()
        if text:
            click.echo(text if isinstance(text, str) else "\n".join(map(str, text)))
        return
    for key, value in toolchain_rows():
        click.echo(f"{key:<10} {value}")
    for kind in ("cpu", "cuda"):
        click.echo(f"{kind + ' plugin':<10} {plugin_status(kind, verbose)}")


def first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else None


def toolchain_rows() -> list[tuple[str, str]]:
    import torch
    from torch.utils import cpp_extension

    cuda = "CPU-only build" if torch.version.cuda is None else f"built with CUDA {torch.version.cuda}"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"
    ninja = shutil.which("ninja") or "ninja"
    cxx = os.environ.get("CXX", "c++")
    nvcc = shutil.which("nvcc")
    return [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", f"{torch.__version__} ({cuda})"),
        ("gpu", gpu),
        (
            "ninja",
            first_line([ninja, "--version"]) if cpp_extension.is_ninja_available() else "not found (pip install ninja)",
        ),
        (
            "compiler",
            (first_line([cxx, "--version"]) or f"'{cxx}' not found (install g++ or set CXX)"),
        ),
        ("nvcc", _nvcc_release(nvcc) if nvcc else "not on PATH"),
        ("ops", f"STYLEGEN_OPS={os.environ.get('STYLEGEN_OPS', '(unset: auto)')}"),
    ]


def _nvcc_release(nvcc: str) -> str:
    try:
        out = subprocess.run([nvcc, "--version"], check=False, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"{nvcc}: {e}"
    release = [line.strip() for line in out.splitlines() if "release" in line]
    return f"{release[0] if release else 'unknown version'} ({nvcc})"


def plugin_status(kind: str, verbose: bool) -> str:
    """'works' or 'unavailable: <reason>' after trying to build and import the plugin."""
    try:
        from stylegen import cuda_ops
    except ImportError as e:
        return f"unavailable: stylegen.cuda_ops cannot be imported ({e})"
    click.echo(f"(building/loading the {kind} plugin...)", err=True)
    try:
        cuda_ops.load_plugin(kind, verbose=verbose)
    except Exception as e:  # noqa: BLE001 - a doctor reports every failure, it never crashes
        return f"unavailable: {' '.join(str(e).split())}"
    return "works"
