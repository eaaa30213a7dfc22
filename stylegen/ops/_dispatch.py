"""Choosing an op implementation: 'ref' (PyTorch), 'cpu' (C++ plugin), 'cuda' (CUDA plugin), 'auto'."""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch

from stylegen.cuda_ops import PluginUnavailable, load_plugin

IMPLS = ("auto", "ref", "cpu", "cuda")
# dtypes each plugin computes in; anything else runs the reference under 'auto'.
PLUGIN_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.float32, torch.float64),
}
_warned: set[str] = set()


class OpsWarning(UserWarning):
    """A compiled plugin is unavailable and the slower reference path is used instead."""


def default_impl() -> str:
    impl = os.environ.get("STYLEGEN_OPS", "auto") or "auto"
    if impl not in IMPLS:
        raise ValueError(f"STYLEGEN_OPS={impl!r} is not one of {', '.join(IMPLS)}")
    return impl


def require_ext() -> bool:
    """STYLEGEN_REQUIRE_EXT=1 (set by CI): a CPU plugin that cannot be built is an error."""
    return os.environ.get("STYLEGEN_REQUIRE_EXT", "0") not in ("", "0")


def resolve(impl: str, x: torch.Tensor, op: str) -> ModuleType | None:
    """Return the plugin module to run `op` on `x` with, or None for the reference path."""
    if impl == "auto":
        impl = default_impl()
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl={impl!r} is not one of {', '.join(IMPLS)}")
    if impl == "ref":
        return None
    if impl == "auto":
        return _auto(x, op)
    if x.device.type != impl:
        raise ValueError(f"{op}: impl='{impl}' cannot run a tensor on device '{x.device}'")
    if x.dtype not in PLUGIN_DTYPES[impl]:
        raise TypeError(f"{op}: impl='{impl}' does not support dtype {x.dtype}")
    try:
        return load_plugin(impl)
    except PluginUnavailable as e:
        raise RuntimeError(f"{op}: impl='{impl}' requested but the plugin is unavailable: {e}") from e


def _auto(x: torch.Tensor, op: str) -> ModuleType | None:
    kind = x.device.type
    if kind not in PLUGIN_DTYPES or x.dtype not in PLUGIN_DTYPES[kind]:
        return None
    try:
        return load_plugin(kind)
    except PluginUnavailable as e:
        if kind == "cpu" and require_ext():
            raise RuntimeError(f"STYLEGEN_REQUIRE_EXT is set but the cpu plugin failed: {e}") from e
        if kind not in _warned:
            _warned.add(kind)
            warnings.warn(
                f"stylegen: {kind} plugin unavailable, using the slower reference ops: {e}",
                OpsWarning,
                stacklevel=3,
            )
        return None
