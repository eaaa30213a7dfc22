#!/usr/bin/env python3
"""Build the CUDA plugin and time the build: CI's compile check (no GPU there), gpu_check.sh's build.

    python scripts/check_cuda_build.py [--build-dir DIR] [--arch LIST] [--strict | --both]

CUDA_HOME defaults to /usr/local/cuda; TORCH_CUDA_ARCH_LIST, when unset, to --arch if given, else
to stylegen.cuda_ops' default (the visible GPUs' capabilities, or 9.0 without a GPU), which is
also what later processes use, so they load this build instead of compiling their own. The
build goes to --build-dir, else $TORCH_EXTENSIONS_DIR, else torch's default cache. --strict builds
the STYLEGEN_CUDA_STRICT=1 variant (--fmad=false), --both builds the default one and then the
strict one. Exits non-zero, with the reason, when a build fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Compile the CUDA plugin of stylegen's fused ops.")
    parser.add_argument("--build-dir", type=Path, help="TORCH_EXTENSIONS_DIR for the build")
    parser.add_argument("--arch", help="TORCH_CUDA_ARCH_LIST when unset (default: the visible GPUs', else 9.0)")
    variant = parser.add_mutually_exclusive_group()
    variant.add_argument("--strict", action="store_true", help="build with STYLEGEN_CUDA_STRICT=1 (--fmad=false)")
    variant.add_argument("--both", action="store_true", help="build the default and the strict variant")
    return parser.parse_args(argv)


def build(cuda_ops, label: str) -> bool:
    name = cuda_ops.plugin_name("cuda")
    caps = ", ".join(f"{major}.{minor}" for major, minor in cuda_ops.gpu_capabilities()) or "none"
    arch = cuda_ops.cuda_arch_list()
    print(f"[check_cuda_build] {label}: building {name} (arch {arch}; GPU capabilities {caps})", flush=True)
    start = time.time()
    try:
        module = cuda_ops.load_plugin("cuda", verbose=True)
    except cuda_ops.PluginUnavailable as e:
        print(f"[check_cuda_build] {label}: FAILED after {time.time() - start:.1f} s: {e}", file=sys.stderr)
        if e.__cause__ is not None:
            print(f"[check_cuda_build] cause: {e.__cause__}", file=sys.stderr)
        return False
    print(f"[check_cuda_build] {label}: OK in {time.time() - start:.1f} s: {module.__file__}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before importing torch's cpp_extension, which reads CUDA_HOME once at import.
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
    if args.arch and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = args.arch
    if args.build_dir is not None:
        args.build_dir.mkdir(parents=True, exist_ok=True)
        os.environ["TORCH_EXTENSIONS_DIR"] = str(args.build_dir.resolve())
    from stylegen import cuda_ops

    where = os.environ.get("TORCH_EXTENSIONS_DIR", "torch's default cache")
    print(f"[check_cuda_build] CUDA_HOME={os.environ['CUDA_HOME']} TORCH_EXTENSIONS_DIR={where}", flush=True)
    if args.both:
        variants = [("default", "0"), ("strict", "1")]
    elif args.strict:
        variants = [("strict", "1")]
    else:  # as the environment says
        variants = [("strict" if os.environ.get("STYLEGEN_CUDA_STRICT", "0") not in ("", "0") else "default", None)]
    ok = True
    for label, strict in variants:
        if strict is not None:
            os.environ["STYLEGEN_CUDA_STRICT"] = strict
        cuda_ops.forget()  # each variant is its own build, under its own fingerprint
        ok = build(cuda_ops, label) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
