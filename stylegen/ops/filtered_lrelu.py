"""filtered_lrelu: upsample, FIR-filter, leaky ReLU, clamp, FIR-filter and downsample, fused.

The nonlinearity of the StyleGAN3 (alias-free) synthesis layers. Same semantics as NVIDIA's
`torch_utils/ops/filtered_lrelu.py` (stylegan3), so their networks give their pixels; the facts
are in ../shared/compat/FORMAT.md ("The filtered_lrelu contract") and docs/ops.md.

Only the reference exists so far: `_filtered_lrelu_ref`, made of upfirdn2d and bias_act. The
compiled CPU and CUDA kernels are not written yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Union

import torch

from stylegen.ops._dispatch import IMPLS, default_impl
from stylegen.ops.bias_act import bias_act
from stylegen.ops.upfirdn2d import filter_size, upfirdn2d

Padding = Union[int, Sequence[int]]
Pad4 = tuple[int, int, int, int]  # (x0, x1, y0, y1)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """Filtered leaky ReLU of a batch of images, per channel, in this order:

    1. add the bias `b`;
    2. upsample by inserting `up - 1` zeros after every pixel, along each axis;
    3. pad by `padding` (relative to the upsampled image; negative values crop);
    4. FIR-filter with `fu` times `up ** 2` (valid positions only);
    5. leaky ReLU with `slope` on the negative side (slope 1: linear), times `gain`;
    6. clamp to [-clamp, clamp] when `clamp` is given;
    7. FIR-filter with `fd` (valid positions only);
    8. keep every `down`-th pixel along each axis, starting at the first.

    The bias goes in before the zero insertion, so inserted and padded zeros stay exactly 0.

    x: [N, C, H, W] float16/32/64 (any strides). fu, fd: the up- and down-sampling filters,
    float32 (any floating dtype; cast to x's dtype): 1-D [taps] = separable (the same taps along
    x, then y), 2-D [fh, fw] = non-separable (fh and fw may differ), None = identity. b: [C] of
    x's dtype, or None. up, down: int >= 1, the same along both axes. padding: int, [px, py] or
    [x0, x1, y0, y1]. gain: > 0 (default sqrt(2)). slope: >= 0 (default 0.2). clamp: >= 0, or
    None for no clamp. flip_filter: False = convolution (the kernels are flipped), True =
    correlation (the same for both filters). impl: 'auto' | 'ref' | 'cpu' | 'cuda'.

    Returns [N, C, out_h, out_w] in x's dtype, per axis (width shown, heights likewise)
        out_w = (W * up + x0 + x1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down
    (`out_size`). An output smaller than 1x1 raises ValueError, as does any bad argument, naming it.

    Gradients: w.r.t. x and b, first order (as NVIDIA's op; the reference also gives higher
    orders through autograd, which nothing promises). The filters are constants: they are
    detached, so a filter with requires_grad=True gets no gradient (its .grad stays None) and
    does not make the output require grad, as in upfirdn2d. (NVIDIA's reference refuses such a
    filter; we detach instead so that one filter tensor behaves alike in upfirdn2d and here.)

    impl: the compiled filtered_lrelu kernels (CPU and CUDA) are not written yet. 'auto' (the
    default) and 'ref' run the reference, on any device and dtype, whatever $STYLEGEN_OPS says
    (an unknown value still raises, as for the other ops) and without a warning; an explicit
    'cpu' or 'cuda' raises RuntimeError saying the compiled op is not available yet.
    """
    _check_tensors(x, fu, fd, b)
    up = _factor(up, "up")
    down = _factor(down, "down")
    pad = parse_padding(padding)
    gain = _real(gain, "gain", minimum=0.0, inclusive=False)
    slope = _real(slope, "slope", minimum=0.0)
    clamp = None if clamp is None else _real(clamp, "clamp", minimum=0.0, allow_inf=True)
    if flip_filter not in (False, True):
        raise ValueError(f"filtered_lrelu: flip_filter must be a bool; got {flip_filter!r}")
    _check_out_size(x, fu, fd, up, down, pad)
    _select_impl(impl)
    # No gradient w.r.t. the filters (NVIDIA's contract): a compiled backward will give none, so
    # the reference must not either, or a learnable filter would train on one impl only.
    fu = None if fu is None else fu.detach()
    fd = None if fd is None else fd.detach()
    return _filtered_lrelu_ref(x, fu, fd, b, up, down, pad, gain, slope, clamp, bool(flip_filter))


def _filtered_lrelu_ref(x, fu, fd, b, up, down, pad, gain, slope, clamp, flip):
    """Slow reference: bias_act and upfirdn2d in plain PyTorch (autograd gives the gradients).

    Memory-hungry: it materialises the upsampled, filtered tensor (up ** 2 times x's size).
    """
    x = bias_act(x, b, impl="ref")
    # The zero insertion keeps 1 / up ** 2 of the samples: the gain up ** 2 restores the level.
    x = upfirdn2d(x, fu, up=up, padding=pad, flip_filter=flip, gain=up**2, impl="ref")
    # lrelu(x) * gain == lrelu(x * gain) for gain > 0: NVIDIA's docstring lists the gain first.
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, impl="ref")
    return upfirdn2d(x, fd, down=down, flip_filter=flip, impl="ref")


def out_size(in_size: int, up: int, down: int, pad0: int, pad1: int, fu_taps: int, fd_taps: int) -> int:
    """Output length along one axis: (in * up + pad0 + pad1 - (fu_taps - 1) - (fd_taps - 1) + down - 1) // down."""
    return (in_size * up + pad0 + pad1 - (fu_taps - 1) - (fd_taps - 1) + down - 1) // down


def parse_padding(padding: Padding) -> Pad4:
    """padding (int, [px, py] or [x0, x1, y0, y1], integers only) -> (x0, x1, y0, y1)."""
    if _is_int(padding):
        p = int(padding)
        return p, p, p, p
    if not isinstance(padding, (list, tuple)) or len(padding) not in (2, 4) or not all(map(_is_int, padding)):
        raise ValueError(
            f"filtered_lrelu: padding must be an int, [px, py] or [x0, x1, y0, y1] of ints; got {padding!r}"
        )
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    return p[0], p[1], p[2], p[3]


def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _factor(v, name: str) -> int:
    if not _is_int(v) or v < 1:
        raise ValueError(f"filtered_lrelu: {name} must be an int >= 1; got {v!r}")
    return int(v)


def _real(v, name: str, minimum: float, inclusive: bool = True, allow_inf: bool = False) -> float:
    """v as a float, checked to be a number >= minimum (> minimum unless inclusive), not NaN."""
    ok = isinstance(v, Real) and not isinstance(v, bool) and not math.isnan(v)
    ok = ok and (allow_inf or math.isfinite(v)) and (v >= minimum if inclusive else v > minimum)
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {minimum:g}"
        raise ValueError(f"filtered_lrelu: {name} must be a {'' if allow_inf else 'finite '}number {bound}; got {v!r}")
    return float(v)


def _check_tensors(x, fu, fd, b) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        what = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"filtered_lrelu: x must be a 4-D [N, C, H, W] floating-point tensor; got {what}")
    for name, f in (("fu", fu), ("fd", fd)):
        if f is None:
            continue
        if not isinstance(f, torch.Tensor) or not f.is_floating_point() or f.ndim not in (1, 2) or f.numel() == 0:
            what = f"{f.dtype} tensor of shape {tuple(f.shape)}" if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(
                f"filtered_lrelu: {name} must be a non-empty 1-D [taps] or 2-D [fh, fw] float tensor or None; got {what}"
            )
        if f.device != x.device:
            raise ValueError(f"filtered_lrelu: {name} is on {f.device} but x is on {x.device}")
    if b is None:
        return
    if not isinstance(b, torch.Tensor) or b.ndim != 1 or b.shape[0] != x.shape[1]:
        what = f"shape {tuple(b.shape)}" if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(
            f"filtered_lrelu: b must be a 1-D tensor of x.shape[1] = {x.shape[1]} values or None; got {what}"
        )
    if b.dtype != x.dtype:
        raise ValueError(f"filtered_lrelu: b must have x's dtype {x.dtype}; got {b.dtype}")
    if b.device != x.device:
        raise ValueError(f"filtered_lrelu: b is on {b.device} but x is on {x.device}")


def _check_out_size(x: torch.Tensor, fu, fd, up: int, down: int, pad: Pad4) -> None:
    (fu_w, fu_h), (fd_w, fd_h) = filter_size(fu), filter_size(fd)
    x0, x1, y0, y1 = pad
    out_w = out_size(x.shape[3], up, down, x0, x1, fu_w, fd_w)
    out_h = out_size(x.shape[2], up, down, y0, y1, fu_h, fd_h)
    if out_w < 1 or out_h < 1:
        raise ValueError(
            f"filtered_lrelu: output would be {out_h}x{out_w} for input {x.shape[2]}x{x.shape[3]}, "
            f"up={up}, down={down}, padding={list(pad)}, fu {fu_h}x{fu_w}, fd {fd_h}x{fd_w}"
        )


def _select_impl(impl: str) -> None:
    """Validate impl; every impl that can run today is the reference (see the docstring)."""
    if impl not in IMPLS:
        raise ValueError(f"filtered_lrelu: impl={impl!r} is not one of {', '.join(IMPLS)}")
    if impl == "auto":
        default_impl()  # an unknown $STYLEGEN_OPS raises here as for the other ops
    elif impl in ("cpu", "cuda"):
        raise RuntimeError(
            f"filtered_lrelu: impl='{impl}' requested but the compiled filtered_lrelu is not available yet "
            "(only the reference exists); use impl='ref' or 'auto'"
        )
