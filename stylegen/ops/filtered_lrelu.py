"""filtered_lrelu: upsample, FIR-filter, leaky ReLU, clamp, FIR-filter and downsample, fused.

The nonlinearity of the StyleGAN3 (alias-free) synthesis layers. Same semantics as NVIDIA's
`torch_utils/ops/filtered_lrelu.py` (stylegan3), so their networks give their pixels; the facts
are in ../shared/compat/FORMAT.md ("The filtered_lrelu contract") and docs/ops.md.

Three paths: `_filtered_lrelu_ref`, made of upfirdn2d and bias_act (executable documentation),
and the CPU and CUDA plugins' fused kernel (cuda_ops/include/filtered_lrelu_core.h), which never
forms the zero-inserted image. Their backward (`_FilteredLrelu.backward`) recomputes the forward
as the reference graph on the same device's upfirdn2d and bias_act plugins and differentiates it:
correct first-order gradients w.r.t. x and b, at the reference's memory cost (it forms the
up-sampled image), only while back-propagating.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Union

import torch
from torch.autograd.function import once_differentiable

from stylegen.ops._dispatch import IMPLS, resolve
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

    impl: 'ref' runs the reference; 'cpu' the CPU plugin (CPU float32/64 tensors), 'cuda' the CUDA
    plugin (CUDA float16/32/64 tensors); either raises when it cannot run the call. 'auto' (the
    default; $STYLEGEN_OPS stands for it when set) picks as stylegen/ops/_dispatch.py describes:
    the plugin of x's device where it computes x's dtype, else the reference with one OpsWarning
    (also when the plugin cannot be built). The plugins' gradients are the reference's math (see
    the module docstring).
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
    if impl not in IMPLS:
        raise ValueError(f"filtered_lrelu: impl={impl!r} is not one of {', '.join(IMPLS)}")
    # No gradient w.r.t. the filters (NVIDIA's contract): the plugins' backward gives none, so
    # the reference must not either, or a learnable filter would train on one impl only.
    fu = None if fu is None else fu.detach()
    fd = None if fd is None else fd.detach()
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    plugin = resolve(impl, x, "filtered_lrelu", needs_grad=needs_grad)
    args = (up, down, pad, gain, slope, clamp, bool(flip_filter))
    if plugin is None:
        return _filtered_lrelu_ref(x, fu, fd, b, *args)
    return _FilteredLrelu.apply(x, b, fu, fd, plugin, args)


def _filtered_lrelu_ref(x, fu, fd, b, up, down, pad, gain, slope, clamp, flip, ops="ref"):
    """Slow reference: bias_act and upfirdn2d in plain PyTorch (autograd gives the gradients).

    Memory-hungry: it materialises the upsampled, filtered tensor (up ** 2 times x's size).
    ops: the impl of those two ops ('ref'; the plugins' backward passes 'cpu' or 'cuda').
    """
    x = bias_act(x, b, impl=ops)
    # The zero insertion keeps 1 / up ** 2 of the samples: the gain up ** 2 restores the level.
    x = upfirdn2d(x, fu, up=up, padding=pad, flip_filter=flip, gain=up**2, impl=ops)
    # lrelu(x) * gain == lrelu(x * gain) for gain > 0: NVIDIA's docstring lists the gain first.
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, impl=ops)
    return upfirdn2d(x, fd, down=down, flip_filter=flip, impl=ops)


class _FilteredLrelu(torch.autograd.Function):
    """The plugin's fused forward; the backward differentiates the reference graph, rebuilt on the
    device's upfirdn2d and bias_act plugins (first order: the gradients it returns are constants)."""

    @staticmethod
    def forward(ctx, x, b, fu, fd, plugin, args):
        up, down, (x0, x1, y0, y1), gain, slope, clamp, flip = args
        ctx.save_for_backward(x, b, fu, fd)
        ctx.args = args
        ftype = torch.float64 if x.dtype == torch.float64 else torch.float32
        one = torch.ones([1], dtype=ftype, device=x.device)
        fuk = one if fu is None else fu.to(ftype).contiguous()
        fdk = one if fd is None else fd.to(ftype).contiguous()
        bk = x.new_empty([0]) if b is None else b.contiguous()
        c = -1.0 if clamp is None or math.isinf(clamp) else clamp  # the kernels' "no clamp"
        return plugin.filtered_lrelu(x, fuk, fdk, bk, up, down, x0, x1, y0, y1, gain, slope, c, flip)

    @staticmethod
    @once_differentiable  # a second derivative raises instead of silently coming out wrong
    def backward(ctx, dy):
        x, b, fu, fd = ctx.saved_tensors
        ops = "cuda" if x.is_cuda else "cpu"
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            bg = None if b is None else b.detach().requires_grad_(True)
            y = _filtered_lrelu_ref(xg, fu, fd, bg, *ctx.args, ops=ops)
            inputs = [xg] if bg is None else [xg, bg]
            grads = torch.autograd.grad(y, inputs, dy)
        dx = grads[0] if ctx.needs_input_grad[0] else None
        db = grads[1] if bg is not None and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None


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
