"""The one table of numerical tolerances used by every test.

A comparison is named by (op, kind); each entry gives (rtol, atol) per dtype, for
`torch.testing.assert_close`. Kinds, from strictest to loosest oracle:

    hand      literal numbers worked out by hand in the test (exact small integers, or
              decimals written to 16 digits)
    ref_cpu   reference (PyTorch) path vs the C++ CPU plugin, forward values
    ref_cpu_grad  the same for first- and second-order gradients (longer sums, more rounding)
    adjoint   the inner products <A x, y> and <x, A^T y> (sums over whole tensors)
    cpu_cuda  CPU plugin vs the default CUDA build (nvcc contracts a*b+c into FMAs)
    strict    CPU plugin vs the STYLEGEN_CUDA_STRICT=1 CUDA build (--fmad=false): upfirdn2d and
              linear/relu/lrelu bias_act must agree bit for bit (both sum a pixel's taps in the
              same order, see cuda_ops/include/upfirdn2d_core.h)

Why these numbers: float32 has a unit roundoff of 6e-8. upfirdn2d sums up to 144 taps per pixel
(12x12 filters) in another order than conv2d's, and the tests use unnormalized N(0, 1) filters, so
partial sums reach ~40 and the results differ by up to ~3e-6 (seen: 2.5e-6 for 8 separable taps).
Gradients add one more such sum (and for bias_act a reduction over the batch for db). float64
results differ only by rounding order, hence ~1e-12. Loosen an entry only with a measured reason.
"""

from __future__ import annotations

import torch

F16, F32, F64 = torch.float16, torch.float32, torch.float64

# (op, kind) -> {dtype: (rtol, atol)}; op '*' applies to every op without its own entry.
TOLERANCES: dict[tuple[str, str], dict[torch.dtype, tuple[float, float]]] = {
    ("*", "hand"): {F32: (1e-6, 1e-6), F64: (1e-12, 1e-12)},
    ("upfirdn2d", "ref_cpu"): {F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
    ("upfirdn2d", "ref_cpu_grad"): {F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
    ("bias_act", "ref_cpu"): {F32: (2e-6, 1e-6), F64: (1e-13, 1e-13)},
    ("bias_act", "ref_cpu_grad"): {F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
    # filtered_lrelu: two filters in a row (up to 24 + 12 taps per axis), the second one over
    # values the first already rounded, plus the lrelu/clamp; the backward is three more passes.
    ("filtered_lrelu", "ref_cpu"): {F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
    ("filtered_lrelu", "ref_cpu_grad"): {F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
    ("*", "adjoint"): {F32: (1e-5, 1e-4), F64: (1e-12, 1e-10)},
    ("*", "cpu_cuda"): {F16: (1e-2, 1e-2), F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
    ("upfirdn2d", "strict"): {F32: (0.0, 0.0), F64: (0.0, 0.0)},
    ("bias_act", "strict"): {F32: (0.0, 0.0), F64: (0.0, 0.0)},
}

# torch.autograd.gradcheck / gradgradcheck settings (always float64).
GRADCHECK = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}


def tol(op: str, kind: str, dtype: torch.dtype) -> dict[str, float]:
    """{'rtol': ..., 'atol': ...} for comparing `op` results of `dtype` by `kind`."""
    table = TOLERANCES.get((op, kind)) or TOLERANCES.get(("*", kind))
    if table is None:
        raise KeyError(f"tests/tolerances.py has no entry for op={op!r}, kind={kind!r}")
    if dtype not in table:
        raise KeyError(f"tests/tolerances.py: ({op!r}, {kind!r}) has no tolerance for {dtype}")
    rtol, atol = table[dtype]
    return {"rtol": rtol, "atol": atol}
