"""upfirdn2d: upsample, pad/crop, FIR-filter and downsample a batch of 2-D images in one op.

Same semantics as NVIDIA's `torch_utils/ops/upfirdn2d.py`, so their networks give their pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F

from stylegen.ops._dispatch import resolve

IntPair = Union[int, Sequence[int]]


def _pair(v: IntPair, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    vx, vy = v
    return int(vx), int(vy)


def _parse_padding(padding: IntPair) -> tuple[int, int, int, int]:
    """padding -> (padx0, padx1, pady0, pady1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return tuple(padding)  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1); got {padding}")


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a 2-D [fh, fw] or separable 1-D [taps] filter (None = 1x1 identity)."""
    if f is None:
        return 1, 1
    if f.ndim == 2:
        return f.shape[-1], f.shape[0]
    return f.shape[0], f.shape[0]


def out_size(in_size: int, up: int, down: int, pad0: int, pad1: int, taps: int) -> int:
    """Output length along one axis: (in*up + pad0 + pad1 - taps) // down + 1."""
    return (in_size * up + pad0 + pad1 - taps) // down + 1


def setup_filter(f, device="cpu", normalize=True, flip_filter=False, gain=1, separable=None) -> torch.Tensor:
    """Make a float32 FIR filter tensor from a list/array/tensor of taps.

    f: 1-D [taps] or 2-D [fh, fw] (None = [1]). normalize: divide by the sum. flip_filter: flip.
    gain: overall gain (applied as gain ** (ndim / 2) to a separable filter, so the 2-D result
    has the given gain). separable: force 1-D (True) or 2-D (False); default: 1-D if given 1-D
    with at least 8 taps, else the outer product.
    Returns float32 [taps] or [fh, fw].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be a scalar, 1-D or 2-D and non-empty; got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f.ger(f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("a 2-D filter cannot be made separable")
    if normalize:
        f /= f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Pad, upsample, filter and downsample a batch of 2-D images.

    x: [N, C, H, W] float tensor. f: 2-D [fh, fw] or separable 1-D [taps] float32 filter, or
    None (identity). up / down: int or (x, y) factors >= 1. padding: int, (x, y) or
    (x0, x1, y0, y1); negative values crop. flip_filter: correlate instead of convolve.
    gain: overall output gain. impl: 'auto' | 'ref' | 'cpu' | 'cuda' (default from
    $STYLEGEN_OPS; see stylegen/ops/_dispatch.py for what 'auto' picks). Returns
    [N, C, out_h, out_w] in x's dtype, out per axis (in*up + pad0 + pad1 - taps) // down + 1.
    Differentiable w.r.t. x to any order. f is a constant on every impl: it is detached, so a
    filter with requires_grad=True gets no gradient (f.grad stays None) and does not make the
    output require grad.
    """
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    _check(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1)
    # No gradient w.r.t. f (NVIDIA's contract): the plugins' backward gives none, so the reference
    # must not either, or a learnable filter would train on one impl and not on the other.
    f = torch.ones([1, 1], dtype=torch.float32, device=x.device) if f is None else f.detach()
    plugin = resolve(impl, x, "upfirdn2d", needs_grad=torch.is_grad_enabled() and x.requires_grad)
    args = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, bool(flip_filter), float(gain))
    if plugin is None:
        return _upfirdn2d_ref(x, f, *args)
    if f.ndim == 1 and f.numel() <= 4:
        # Short separable filter: one 2-D pass beats two passes through memory. The outer product
        # is taken in x's precision (a float32 one would cost float64 inputs 1e-7 of accuracy).
        f = f.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        f = f.ger(f)
    if f.ndim == 1:
        # Long separable filter: two 1-D passes (2*taps MACs per pixel, not taps**2). The gain
        # goes whole into the second pass, as in NVIDIA's plugin path (gain ** 0.5 per pass would
        # be complex for a negative gain).
        hx = (upx, 1, downx, 1, padx0, padx1, 0, 0, args[8], 1.0)
        hy = (1, upy, 1, downy, 0, 0, pady0, pady1, args[8], float(gain))
        x = _UpFirDn2d.apply(x, f[None, :], plugin, hx)
        return _UpFirDn2d.apply(x, f[:, None], plugin, hy)
    return _UpFirDn2d.apply(x, f, plugin, args)


def _check(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be a 4-D [N, C, H, W] tensor; got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        raise TypeError(f"upfirdn2d: x must be floating point; got {x.dtype}")
    if f is not None and (f.ndim not in (1, 2) or f.numel() == 0):
        raise ValueError(f"upfirdn2d: f must be 1-D or 2-D and non-empty; got shape {tuple(f.shape)}")
    if min(upx, upy, downx, downy) < 1:
        raise ValueError(f"upfirdn2d: up/down must be >= 1; got up=({upx}, {upy}) down=({downx}, {downy})")
    fw, fh = filter_size(f)
    ow = out_size(x.shape[3], upx, downx, padx0, padx1, fw)
    oh = out_size(x.shape[2], upy, downy, pady0, pady1, fh)
    if ow < 1 or oh < 1:
        raise ValueError(
            f"upfirdn2d: output would be {oh}x{ow} for input {x.shape[2]}x{x.shape[3]}, "
            f"up=({upx}, {upy}), down=({downx}, {downy}), padding=({padx0}, {padx1}, {pady0}, {pady1}), "
            f"filter {fh}x{fw}"
        )


def _upfirdn2d_ref(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
    """Slow reference: zero-insert, pad/crop, conv2d with the (flipped) filter, subsample."""
    n, c, h, w = x.shape
    # Upsample by inserting zeros.
    x = x.reshape([n, c, h, 1, w, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([n, c, h * upy, w * upx])
    # Pad, then crop the negative padding.
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]
    # conv2d correlates: flip for a true convolution. The gain is applied in x's precision, and
    # whole to the second pass of a separable filter (gain ** 0.5 per pass is complex for gain < 0).
    f = f.to(x.dtype)
    if not flip:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([c, 1] + [1] * f.ndim)
    if c == 0 or n == 0:
        x = x[:, :, : x.shape[2] - f.shape[2] + 1, : x.shape[3] - f.shape[-1] + 1]
    elif f.ndim == 4:
        x = F.conv2d(x, f * gain, groups=c)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=c)
        x = F.conv2d(x, f.unsqueeze(3) * gain, groups=c)
    return x[:, :, ::downy, ::downx]


class _UpFirDn2d(torch.autograd.Function):
    """Plugin upfirdn2d; its gradient is upfirdn2d again, so every order of derivative works."""

    @staticmethod
    def forward(ctx, x, f, plugin, args):
        upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain = args
        ctx.save_for_backward(f)
        ctx.plugin, ctx.args, ctx.x_shape = plugin, args, x.shape
        fk = f.to(torch.float64 if x.dtype == torch.float64 else torch.float32).contiguous()
        return plugin.upfirdn2d(x, fk, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain)

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain = ctx.args
        _, _, ih, iw = ctx.x_shape
        _, _, oh, ow = dy.shape
        fw, fh = filter_size(f)
        # The adjoint: swap up/down, flip the filter, pad so the output lands on x's grid.
        p = (
            fw - padx0 - 1,
            iw * upx - ow * downx + padx0 - upx + 1,
            fh - pady0 - 1,
            ih * upy - oh * downy + pady0 - upy + 1,
        )
        dx = None
        if ctx.needs_input_grad[0]:
            args = (downx, downy, upx, upy, *p, not flip, gain)
            dx = _UpFirDn2d.apply(dy, f, ctx.plugin, args)
        return dx, None, None, None


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Filter with f, padding so the output has x's size (plus `padding`)."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample by `up` (int or (x, y)) with FIR filter f; output = input size * up (+ padding)."""
    upx, upy = _pair(up, "up")
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Downsample by `down` (int or (x, y)) with FIR filter f; output = input size / down."""
    downx, downy = _pair(down, "down")
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
