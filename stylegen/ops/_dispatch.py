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
iteration measured slower with the plugin (11.0 vs 9.9 s/iter), but op by op the plugin is the
faster path here for training (fwd+bwd, r1) as for inference, at every shape the networks use;
the only cells where the reference wins are small bias_act calls (rule 4), and the small-bias_act
recorded forward alone (fwd-grad, <= 32K elements: 0.6-0.9x), whose backward the plugin wins back
(fwd+bwd 0.7-1.7x, r1 1.4-2.8x). Measured with `python bench/ops.py --threads 1 --repeats 5
--nvidia-repo /work/nvidia-sg2ada` on an Intel(R) Xeon(R) Processor (KVM, family 6 model 207;
flags avx2, avx512f, no amx; torch CPU capability AVX512), torch 2.14.1+cu130, 1 thread, float32,
median of 5 alternating samples, ms per call as ref / cpu / NVIDIA stylegan2-ada (on CPU that is
their reference). fwd = no_grad; fwd-grad = inputs require grad, forward only; fwd+bwd = forward
and backward; r1 = gradient with create_graph, then its backward. Filter [1, 3, 3, 1]; bias_act is
lrelu + bias + clamp 256. The machine (2 cores) was shared with other jobs: single cells vary up to
3x between runs, ratios much less. 2 threads there measured thread wake-up stalls (upsample2d
[1, 512, 4, 4] fwd: ref 76 ms vs 1.8 ms at 1 thread), with the same ratios (4.8x vs 3.1x).

| op       | shape        | fwd           | fwd-grad      | fwd+bwd       | r1                |
| ---      | ---          | ---           | ---           | ---           | ---               |
| upsample2d   | [1, 512, 4, 4]   | 1.82 / 0.586 / 1.9 | 1.7 / 0.769 / 0.983 | 2.06 / 0.997 / 2.95 | 84.7 / 3.13 / 91.2 |
| upsample2d   | [8, 512, 8, 8]   | 22.7 / 2.48 / 17.7 | 13 / 10.4 / 21.3  | 42.1 / 12.5 / 45.1 | 188 / 28.9 / 178  |
| upsample2d   | [1, 512, 32, 32] | 23.9 / 6.54 / 27.5 | 25.3 / 7.24 / 25.9 | 81.5 / 25.3 / 67.5 | 567 / 68.7 / 555  |
| upsample2d   | [8, 512, 32, 32] | 729 / 155 / 699   | 298 / 84.2 / 302  | 1230 / 218 / 926  | 1270 / 238 / 1360 |
| upsample2d   | [8, 3, 128, 128] | 26 / 1.49 / 25.3  | 28.5 / 5.56 / 24.4 | 55.3 / 7.73 / 62.5 | 222 / 12.6 / 169  |
| upsample2d   | [1, 64, 256, 256] | 190 / 40.2 / 193  | 242 / 54.2 / 254  | 555 / 119 / 578   | 3240 / 295 / 1750 |
| downsample2d | [1, 512, 4, 4]   | 0.851 / 0.194 / 1.01 | 0.696 / 0.192 / 1.16 | 1.64 / 0.645 / 1.81 | 15 / 1.19 / 14.9  |
| downsample2d | [8, 512, 8, 8]   | 3.49 / 2.04 / 2.06 | 2.78 / 1.09 / 5.55 | 8.11 / 7.36 / 8.5 | 125 / 12 / 103    |
| downsample2d | [1, 512, 32, 32] | 10.3 / 2.39 / 3.03 | 2.68 / 2.57 / 11.6 | 30.5 / 11.2 / 27.8 | 123 / 11.2 / 120  |
| downsample2d | [8, 512, 32, 32] | 54.8 / 15.8 / 57.2 | 81.6 / 23.8 / 81.9 | 349 / 127 / 353   | 556 / 131 / 527   |
| downsample2d | [8, 3, 128, 128] | 8.8 / 2.39 / 17.8 | 8.98 / 1.18 / 9.51 | 21.3 / 2.13 / 22.8 | 49.9 / 8.01 / 53.8 |
| downsample2d | [1, 64, 256, 256] | 38.3 / 10.1 / 39  | 42.5 / 13.7 / 40.2 | 158 / 41 / 117| 665 / 123 / 680   |
| filter2d | [1, 512, 4, 4]   | 1.37 / 0.42 / 3.86 | 1.02 / 0.586 / 1.87 | 3 / 1.62 / 2.56   | 99.2 / 0.994 / 87.6 |
| filter2d | [8, 512, 8, 8]   | 1.73 / 5.7 / 2.1  | 1.64 / 9.74 / 1.89 | 9.06 / 15.8 / 8.16 | 116 / 18.6 / 118  |
| filter2d | [1, 512, 32, 32] | 9.54 / 4.32 / 8.52 | 4.62 / 9.76 / 10.3 | 17.6 / 19.8 / 22.3 | 143 / 27.5 / 163  |
| filter2d | [8, 512, 32, 32] | 82.7 / 54.4 / 63.6 | 72.2 / 43.1 / 67.9 | 159 / 101 / 164   | 616 / 211 / 603   |
| filter2d | [8, 3, 128, 128] | 12.7 / 4.04 / 17.6 | 12.6 / 9.47 / 12.9 | 32.4 / 11.4 / 35.4 | 82.9 / 17.7 / 73.4 |
| filter2d | [1, 64, 256, 256] | 48.7 / 24.7 / 56.4 | 59.8 / 43.7 / 60.1 | 117 / 88.6 / 124  | 518 / 169 / 512   |
| bias_act | [8, 512]     | 0.0712 / 0.128 / 0.257 | 0.13 / 0.141 / 0.184 | 0.495 / 0.485 / 0.55 | 1.22 / 0.893 / 1.33 |
| bias_act | [1, 512, 4, 4]   | 0.088 / 0.177 / 0.113 | 0.123 / 0.208 / 0.247 | 0.596 / 0.907 / 1.25 | 1.98 / 0.701 / 1.97 |
| bias_act | [8, 512, 8, 8]   | 1.67 / 1.25 / 1.05 | 1.48 / 1.15 / 1.45 | 10.8 / 1.36 / 10.8 | 21.7 / 12.2 / 13.6 |
| bias_act | [1, 512, 32, 32] | 3.02 / 2.02 / 3.31 | 1.54 / 1.82 / 9.93 | 16.7 / 6.74 / 21.4 | 25.4 / 21.7 / 30.4 |
| bias_act | [8, 512, 32, 32] | 35.7 / 12.6 / 36.7 | 36.1 / 12.5 / 36.2 | 130 / 45.7 / 161  | 223 / 142 / 252   |
| bias_act | [8, 3, 128, 128] | 4.9 / 0.842 / 4.23 | 0.755 / 1.08 / 3.37 | 12.2 / 3.76 / 16.3 | 23.6 / 13.1 / 23.3 |
| bias_act | [1, 64, 256, 256] | 35.6 / 12.4 / 34.9 | 36.7 / 17.8 / 36.5 | 102 / 34.3 / 105  | 188 / 109 / 181   |

Re-measured with 15 samples where the first run put ref ahead: filter2d [8, 512, 8, 8] fwd 12.5 /
10.7, fwd-grad 12.6 / 10.7, fwd+bwd 23.1 / 17.6; filter2d [1, 512, 32, 32] fwd-grad 7.04 / 8.86
(fwd, the same kernels, 16.1 / 8.81): noise. bias_act without grad (rule 4, ms ref / cpu):
[8, 512] 0.114 / 0.092, [1, 512, 4, 4] 0.125 / 0.120, [2, 512, 8, 8] 0.22 / 0.34,
[8, 512, 8, 8] 0.92 / 0.98 (first run above: 1.67 / 1.25), [1, 512, 32, 32] 3.01 / 1.89.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch

from stylegen.cuda_ops import PluginUnavailable, load_plugin

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


class OpsWarning(UserWarning):
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
