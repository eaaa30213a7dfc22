"""Geometric resampling for ADA (appendix B of Karras et al. 2020): the half-band low-pass
filter, exact pixel blits for pixel permutations, and alias-free 2x resampling of images through
per-image inverse 3x3 homogeneous matrices, with symmetric-reflection borders throughout.

`stylegen.training.augment` draws the matrices; this module applies them.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from stylegen.ops import upfirdn2d, upsample2d

__all__ = ["apply_geometry", "lowpass_filter"]

# --- The low-pass filter ------------------------------------------------------------------------


@functools.cache
def _design_lowpass(taps: int, pass_edge: float, stop_edge: float) -> tuple[float, ...]:
    # Least squares over [0, pass_edge] (gain 1) and [stop_edge, 0.5] (gain 0), in cycles per
    # sample at the 2x rate, on the taps' half (the filter is symmetric), subject to unit DC gain
    # and H'(1/2) = H'''(1/2) = 0. A symmetric even-length filter already has H(1/2) = H''(1/2) = 0,
    # so the zero at Nyquist has order 4: constants up to cubics upsample with no 2-pixel ripple.
    half = taps // 2
    d = (taps - 1) / 2 - torch.arange(half, dtype=torch.float64)  # tap distance from the centre
    w = torch.linspace(0, 0.5, 2001, dtype=torch.float64)
    a = 2 * torch.cos(2 * math.pi * w[:, None] * d)  # amplitude response = a @ half_taps
    ap, ast = a[w <= pass_edge], a[w >= stop_edge]
    m = ap.T @ ap + ast.T @ ast
    b = ap.sum(0)
    cons = [2 * torch.ones(half, dtype=torch.float64)]
    cons += [(2 * math.pi * d) ** k * torch.sin(math.pi * d) for k in (1, 3)]
    c = torch.stack(cons)
    kkt = torch.cat([torch.cat([2 * m, c.T], 1), torch.cat([c, torch.zeros(3, 3, dtype=torch.float64)], 1)])
    rhs = torch.cat([2 * b, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)])
    h = torch.linalg.solve(kkt, rhs)[:half]
    return tuple(torch.cat([h, h.flip(0)]).tolist())


def lowpass_filter(taps: int = 12, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Symmetric half-band FIR filter for 2x up/downsampling, [taps] (taps even, >= 8).

    Constrained least squares (see `_design_lowpass`): 12 taps give -0.14 dB at 0.15 and -6.9 dB
    at 0.25 cycles/sample (the old Nyquist), <= -38 dB above 0.35 and <= -48 dB above 0.4.
    """
    if taps % 2 or taps < 8:
        raise ValueError(f"lowpass_filter: taps must be even and >= 8; got {taps}")
    return torch.tensor(_design_lowpass(taps, 0.15, 0.35), dtype=dtype)


# --- Applying the matrices ------------------------------------------------------------------------


def _mirror(k: torch.Tensor, size: int) -> torch.Tensor:
    """Fold integer pixel indices into [0, size) by symmetric reflection (edge pixel repeated)."""
    k = torch.remainder(k, 2 * size)
    return torch.where(k >= size, 2 * size - 1 - k, k)


def _mirror_pad(x: torch.Tensor, s: int) -> torch.Tensor:
    """Symmetric reflect padding by s pixels on every side, any s (the image is tiled by mirrors)."""
    h, w = x.shape[2:]
    rows = _mirror(torch.arange(-s, h + s, device=x.device), h)
    cols = _mirror(torch.arange(-s, w + s, device=x.device), w)
    return x.index_select(2, rows).index_select(3, cols)


def _blit_mask(g: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[N] bool: g is a pixel permutation (dihedral linear part, shift landing on pixel centres)."""
    lin = g[:, :2, :2]
    signed_perm = (lin.abs().sum(1) == 1).all(1) & (lin.abs().sum(2) == 1).all(1)
    dihedral = (lin == lin.round()).flatten(1).all(1) & signed_perm
    corner = g @ torch.tensor([0.5 - w / 2, 0.5 - h / 2, 1], dtype=g.dtype, device=g.device)
    col, row = corner[:, 0] + w / 2 - 0.5, corner[:, 1] + h / 2 - 0.5
    return dihedral & (g[:, 2] == g.new_tensor([0, 0, 1])).all(1) & (col == col.round()) & (row == row.round())


def _blit(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Pixel blitting: exact copies along the permutations g [n, 3, 3] (see `_blit_mask`)."""
    n, c, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=g.dtype, device=g.device) + 0.5 - h / 2,
        torch.arange(w, dtype=g.dtype, device=g.device) + 0.5 - w / 2,
        indexing="ij",
    )
    q = g @ torch.stack([xs.flatten(), ys.flatten(), torch.ones_like(xs.flatten())])  # [n, 3, H*W]
    col = _mirror((q[:, 0] + w / 2 - 0.5).round().long(), w)
    row = _mirror((q[:, 1] + h / 2 - 0.5).round().long(), h)
    src = (row * w + col)[:, None].expand(n, c, h * w)
    return x.flatten(2).gather(2, src).view(n, c, h, w)


def _resample(x: torch.Tensor, g: torch.Tensor, f: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """General path: [n, C, H, W] through the inverse transforms g [n, 3, 3] -> [n, C, H, W].

    Appendix B: upsample 2x with the low-pass f, sample bilinearly, low-pass and decimate 2x, so
    that neither the magnification nor the minification aliases. Outside the image is its
    symmetric reflection: the upsampling reads a mirror-padded copy, and grid_sample's
    'reflection' mode folds far-away samples the same way.
    """
    n, c, h, w = x.shape
    taps = f.shape[0]
    s = taps // 4  # reach of the upsampling filter, in input pixels
    up = upsample2d(_mirror_pad(x, s), f, impl=impl)[:, :, 2 * s : 2 * (s + h), 2 * s : 2 * (s + w)]
    # 2x output grid plus the margin the decimation filter consumes: (2H + 2m - taps) // 2 + 1 = H.
    m = taps // 2 - 1
    ho, wo = 2 * (h + m), 2 * (w + m)
    # affine_grid works in [-1, 1] coordinates (align_corners=False: the outer pixel edges); the
    # 2x output grid's pixel centres sit at normalized u = 4 x / wo, the input's at x / (W / 2).
    to_in = torch.diag(g.new_tensor([2 / w, 2 / h, 1]))
    from_out = torch.diag(g.new_tensor([wo / 4, ho / 4, 1]))
    theta = (to_in @ g @ from_out)[:, :2].to(x.dtype)
    grid = F.affine_grid(theta, [n, c, ho, wo], align_corners=False)
    y = F.grid_sample(up, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return upfirdn2d(y, f, down=2, impl=impl)


def apply_geometry(images: torch.Tensor, g_inv: torch.Tensor, f: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """Images [N, C, H, W] through inverse transforms g_inv [N, 3, 3] -> [N, C, H, W].

    Images whose g_inv is the identity are passed through bit for bit (and when that is all of
    them, `images` itself is returned); pixel permutations (flips, 90-degree rotations, integer
    shifts) are exact copies; the rest are resampled with the low-pass f [taps] (`_resample`).
    Borders are symmetric reflections throughout. Differentiable w.r.t. images.
    """
    h, w = images.shape[2:]
    active = (g_inv != torch.eye(3, dtype=g_inv.dtype, device=g_inv.device)).flatten(1).any(1)
    if not bool(active.any()):
        return images
    blit = _blit_mask(g_inv, h, w)
    out = images
    for mask, path in ((active & blit, _blit), (active & ~blit, functools.partial(_resample, f=f, impl=impl))):
        idx = mask.nonzero()[:, 0]
        if idx.numel():
            out = out.index_copy(0, idx, path(images.index_select(0, idx), g_inv.index_select(0, idx)))
    return out
