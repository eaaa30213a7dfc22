"""The full 3x3 convolution of StyleGAN3-T's layers by Winograd's F(4x4, 3x3), for CPU inference.

StyleGAN3's convolutions pad by k - 1 = 2 (the output is 2 pixels larger than the input each
way) and are most of a CPU's time per image once `filtered_lrelu` is fused. F(4x4, 3x3) (Lavin
& Gray 2015, "Fast Algorithms for Convolutional Neural Networks") computes each 4x4 output tile
from a 6x6 input tile with 36 multiplies per channel pair instead of 144: the transformed input
[36, C, tiles] times the transformed weights [36, O, C] is 36 GEMMs, a few rows of
tiles at a time (two small work buffers, reused across the image), and the
per-image style (input channels) and demodulation (output channels) scales ride along in the
plugin's input and output transforms (`cuda_ops/cpu/winograd_cpu.cpp`, which holds B^T and A^T),
so the weights are transformed once, when the generator is frozen. It is a Toom-Cook
construction at the points 0, 1, -1, 1/2, -2 (and infinity), which round less than the usual
0, +-1, +-2; rounding differs from a direct convolution by under 2e-6 of the sum of the
absolute products (tests/test_sg3_winograd.py), and the fixtures' pixels hold to 1e-4
(tests/test_sg3_networks.py). Inference only: without autograd, on CPU float32, when the ops
resolve to the CPU plugin (STYLEGEN_OPS=ref turns it off with the rest). The GEMMs, and the
1x1 layers' products (`matmul`), run on torch's BLAS on Intel CPUs and on the plugin's own GEMM
on others, where MKL's fast kernels are not assured (`cuda_ops/cpu/gemm_cpu.cpp`;
STYLEGEN_CPU_GEMM=plugin|torch chooses).
"""

from __future__ import annotations

import math

import torch

from stylegen.ops._dispatch import resolve

POINTS = (0.0, 1.0, -1.0, 0.5, -2.0)  # the finite interpolation points; the sixth is infinity
BUDGET = 1 << 22  # floats (16 MB) per work buffer: a chunk's transformed input, and its product


def _weight_transform() -> torch.Tensor:
    """G [6, 3] float64: row j = (1, p_j, p_j^2) / prod_{l != j} (p_j - p_l), the last row (0, 0, 1)."""
    rows = [[p**k / math.prod(p - q for q in POINTS if q != p) for k in range(3)] for p in POINTS]
    return torch.tensor([*rows, [0.0, 0.0, 1.0]], dtype=torch.float64)


_G = _weight_transform()
_GG = torch.kron(_G, _G)  # [36, 9]: row 6a + b, column 3i + j = G[a, i] G[b, j]
_PAIRS = 8192  # channel pairs per float64 chunk of winograd_weights (a 2.4 MB product)


def winograd_weights(weight: torch.Tensor) -> torch.Tensor:
    """[O, C, 3, 3] -> [36, O, C] float32: G g G^T per channel pair, computed in float64.

    (G (x) G) @ g over all O x C kernels, already in the [36, O, C] order, in chunks of columns
    (no float64 copy of the whole layer, whose fresh pages cost more than the arithmetic). As
    O x C batched 6 x 3 products, a 512-channel layer took 0.13-0.26 s (2.2 s for the 14 layers
    of SG3-T 256 px on its first image); this way about 15 ms."""
    if weight.shape[2:] != (3, 3):
        raise ValueError(f"winograd_weights: a 3x3 kernel is needed; got {tuple(weight.shape)}")
    o, c = weight.shape[:2]
    g = weight.detach().reshape(o * c, 9)
    u = torch.empty(36, o * c, dtype=torch.float32)
    for i in range(0, o * c, _PAIRS):
        u[:, i : i + _PAIRS] = _GG @ g[i : i + _PAIRS].to(torch.float64).t()
    return u.reshape(36, o, c)


def plugin_for(x: torch.Tensor, *others: torch.Tensor):
    """The CPU plugin when the Winograd path can run on x (else None: use F.conv2d): CPU float32,
    no gradient to record through x or others, and the ops resolving to the CPU plugin."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *others)):
        return None
    return resolve("auto", x, "filtered_lrelu")


def conv3x3_full(
    plugin,
    x: torch.Tensor,
    u: torch.Tensor,
    in_scale: torch.Tensor,
    out_scale: torch.Tensor,
    budget: int = BUDGET,
    u_packed: torch.Tensor | None = None,
):
    """F.conv2d(x * in_scale, weight, padding=2) * out_scale, with u = winograd_weights(weight).

    x [N, C, H, W]; in_scale [N, C]; out_scale [N, O] -> [N, O, H + 2, W + 2]. budget: floats in
    each of the plugin's two buffers (the transformed input and product of a few rows of tiles).
    u_packed: PackedWeights(u).get(plugin), kept by the caller (None: packed on the fly if needed).
    """
    s, d = (t.to(torch.float32).contiguous() for t in (in_scale, out_scale))
    packed = torch.empty(0) if u_packed is None else u_packed
    return plugin.winograd_f4_conv3x3(x.contiguous(), u, packed, s, d, budget)


class PackedWeights:
    """A weight matrix [B, M, K] packed for the plugin's GEMM once, kept with the layer: packing the
    36 x 512 x 512 Winograd weights afresh each call cost more than some layers' products (filling
    new pages is slow). Packed again if STYLEGEN_CPU_GEMM / set_cpu_gemm changed the GEMM (empty
    when torch's BLAS multiplies)."""

    def __init__(self, a: torch.Tensor):
        self.a, self.gemm, self.packed = a, None, None

    def get(self, plugin) -> torch.Tensor:
        gemm = plugin.cpu_gemm()
        if gemm != self.gemm:
            self.packed, self.gemm = plugin.matmul_pack(self.a), gemm
        return self.packed


def matmul(plugin, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [N or 1, M, K] @ b [N, K, N'] (the 1x1 layers): by the plugin's GEMM choice (its own on
    CPUs that are not Intel's, else torch's; STYLEGEN_CPU_GEMM) when plugin_for gave a plugin,
    else torch.matmul."""
    if plugin is None:
        return torch.matmul(a, b)
    return plugin.matmul(a.contiguous(), b.contiguous())
