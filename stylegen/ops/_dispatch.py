"""Choosing an op implementation: 'ref' (PyTorch), 'cpu' (C++ plugin), 'cuda' (CUDA plugin), 'auto'.

What 'auto' runs, for a tensor x (first match wins):

1. $STYLEGEN_OPS, when set to other than 'auto', stands for the impl argument.
2. x on a device without a plugin (mps, xla, ...), or in a dtype its plugin does not compute
   (bfloat16 anywhere, float16 on CPU): the reference, with one OpsWarning per reason.
3. A CUDA tensor: the CUDA plugin.
4. A CPU tensor: the CPU plugin, except where the reference measured faster (CPU_REF_RULES):
   bias_act that autograd does not record (no_grad / inference, or no input requiring grad) on
   fewer than 2**17 elements, where the plugin's fixed cost per call exceeds the work (mapping
   network [N, 512], low-resolution blocks at small batch). The rule reads only the op, x.numel() and whether
   autograd records the call, never a clock: a given call always takes the same path, bit for bit.
5. A plugin that cannot be built: the reference, with one OpsWarning naming the build error
   (an error instead with STYLEGEN_REQUIRE_EXT=1, as in CI, even where rule 4 picks the reference).

An explicit impl ('cpu', 'cuda') always runs that plugin or raises; 'ref' never loads one.

Why not 'ref wherever a gradient is required': on an AMD EPYC (AVX2 only) a whole training
iteration once measured slower with the plugin (11.0 vs 9.9 s/iter), but op by op the plugin is
the faster path for training (fwd+bwd, R1's double backward) as for inference, at every shape the
networks use; the only cells where the reference wins are small bias_act calls without autograd
(rule 4). The table behind the rule, ref vs plugin vs NVIDIA's ops timed alternating on the same
inputs, with the CPU, torch version and threads it was measured with, is `docs/benchmarks.md`
("Ops", made by `python bench/ops.py --nvidia-repo DIR --out docs/benchmarks.md`).
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch

from stylegen.cuda_ops import PluginUnavailable, load_plugin
from stylegen.errors import StylegenWarning

IMPLS = ("auto", "ref", "cpu", "cuda")
# dtypes each plugin computes in; anything else runs the reference under 'auto' (with a warning).
PLUGIN_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.float32, torch.float64),
}
# Where 'auto' prefers the reference on a CPU tensor, as op -> (needs_grad, numel below which the
# reference wins). Measured by bench/ops.py (see the module docstring); anything else: the plugin.
CPU_REF_RULES: dict[str, tuple[bool, int]] = {"bias_act": (False, 1 << 17)}
# Fallback reasons already warned about (one warning per reason per process).
_warned: set[str] = set()


class OpsWarning(StylegenWarning):
    """A compiled plugin cannot run this call and the slower reference path is used instead."""


def default_impl() -> str:
    impl = os.environ.get("STYLEGEN_OPS", "auto") or "auto"
    if impl not in IMPLS:
        raise ValueError(f"STYLEGEN_OPS={impl!r} is not one of {', '.join(IMPLS)}")
    return impl


def require_ext() -> bool:
    """STYLEGEN_REQUIRE_EXT=1 (set by CI): a CPU plugin that cannot be built is an error."""
    return os.environ.get("STYLEGEN_REQUIRE_EXT", "0") not in ("", "0")


def resolve(impl: str, x: torch.Tensor, op: str, needs_grad: bool = False) -> ModuleType | None:
    """Return the plugin module to run `op` on `x` with, or None for the reference path.

    needs_grad: autograd records this call (grad mode on and an input requires grad); only
    'auto' on a CPU tensor looks at it (see the module docstring).
    """
    if impl == "auto":
        impl = default_impl()
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl={impl!r} is not one of {', '.join(IMPLS)}")
    if impl == "ref":
        return None
    if impl == "auto":
        return _auto(x, op, needs_grad)
    if x.device.type != impl:
        raise ValueError(f"{op}: impl='{impl}' cannot run a tensor on device '{x.device}'")
    if x.dtype not in PLUGIN_DTYPES[impl]:
        raise TypeError(f"{op}: impl='{impl}' does not support dtype {x.dtype}")
    try:
        return load_plugin(impl)
    except PluginUnavailable as e:
        raise RuntimeError(f"{op}: impl='{impl}' requested but the plugin is unavailable: {e}") from e


def cpu_prefers_ref(op: str, numel: int, needs_grad: bool) -> bool:
    """True where 'auto' runs the reference on a CPU tensor although the plugin is available."""
    rule = CPU_REF_RULES.get(op)
    return rule is not None and needs_grad == rule[0] and numel < rule[1]


def _auto(x: torch.Tensor, op: str, needs_grad: bool) -> ModuleType | None:
    kind = x.device.type
    if kind not in PLUGIN_DTYPES:
        _warn_once(f"no plugin for device '{kind}'; using the reference ops")
        return None
    if x.dtype not in PLUGIN_DTYPES[kind]:
        _warn_once(f"{kind} plugin does not compute {str(x.dtype).removeprefix('torch.')}; using the reference ops")
        return None
    # Under STYLEGEN_REQUIRE_EXT the plugin is loaded even where the rule picks the reference, so
    # a broken build fails CI on every call rather than on whichever call happens to use it.
    if kind == "cpu" and cpu_prefers_ref(op, x.numel(), needs_grad) and not require_ext():
        return None  # the faster path here, by measurement: not a fallback, so no warning
    try:
        plugin = load_plugin(kind)
    except PluginUnavailable as e:
        if kind == "cpu" and require_ext():
            raise RuntimeError(f"STYLEGEN_REQUIRE_EXT is set but the cpu plugin failed: {e}") from e
        _warn_once(f"{kind} plugin unavailable, using the slower reference ops: {e}", key=kind)
        return None
    if kind == "cpu" and cpu_prefers_ref(op, x.numel(), needs_grad):
        return None
    return plugin


def _warn_once(reason: str, key: str | None = None) -> None:
    """Warn about a fallback to the reference, once per `key` (default: the reason itself)."""
    key = reason if key is None else key
    if key in _warned:
        return
    _warned.add(key)
    # stacklevel 5: past _warn_once, _auto, resolve and the public op, to the line calling the op.
    warnings.warn(f"stylegen: {reason}", OpsWarning, stacklevel=5)
