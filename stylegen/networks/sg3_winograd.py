"""The full 3x3 convolution of StyleGAN3-T's layers by Winograd's F(2x2, 3x3), for CPU inference.

StyleGAN3's convolutions pad by k - 1 = 2 (the output is 2 pixels larger than the input each
way) and are most of a CPU's time per image once `filtered_lrelu` is fused. F(2x2, 3x3) (Lavin
& Gray 2015, "Fast Algorithms for Convolutional Neural Networks") computes each 2x2 output tile
from a 4x4 input tile with 16 multiplies per channel pair instead of 36: the transformed input
[16, C, tiles] times the transformed weights [16, O, C] is 16 GEMMs (torch.bmm), and the
per-image style (input channels) and demodulation (output channels) scales ride along in the
plugin's input and output transforms (`cuda_ops/cpu/ops_cpu.cpp`), so the weights are
transformed once, when the generator is frozen. Rounding differs from a direct convolution by a
few float32 ulps of the layer's largest value (tests/test_sg3_winograd.py); the fixtures'
pixels hold to 1e-4 (tests/test_sg3_networks.py). Inference only: without autograd, on CPU
float32, when the ops resolve to the CPU plugin (STYLEGEN_OPS=ref turns it off with the rest).
"""

from __future__ import annotations

import torch

from stylegen.ops._dispatch import resolve

# G of F(2x2, 3x3): the weight transform G g G^T.
_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


def winograd_weights(weight: torch.Tensor) -> torch.Tensor:
    """[O, C, 3, 3] -> [16, O, C] float32: G g G^T per channel pair, computed in float64."""
    if weight.shape[2:] != (3, 3):
        raise ValueError(f"winograd_weights: a 3x3 kernel is needed; got {tuple(weight.shape)}")
    u = _G @ weight.detach().to(torch.float64) @ _G.t()  # [O, C, 4, 4]
    return u.permute(2, 3, 0, 1).reshape(16, weight.shape[0], weight.shape[1]).to(torch.float32).contiguous()


def plugin_for(x: torch.Tensor, *others: torch.Tensor):
    """The CPU plugin when the Winograd path can run on x (else None: use F.conv2d): CPU float32,
    no gradient to record through x or others, and the ops resolving to the CPU plugin."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *others)):
        return None
    return resolve("auto", x, "filtered_lrelu")


def conv3x3_full(plugin, x: torch.Tensor, u: torch.Tensor, in_scale: torch.Tensor, out_scale: torch.Tensor):
    """F.conv2d(x * in_scale, weight, padding=2) * out_scale, with u = winograd_weights(weight).

    x [N, C, H, W]; in_scale [N, C]; out_scale [N, O] -> [N, O, H + 2, W + 2].
    """
    n, _, h, w = x.shape
    v = plugin.winograd_f2_input(x.contiguous(), in_scale.to(torch.float32).contiguous())
    m = torch.bmm(u, v)
    return plugin.winograd_f2_output(m, out_scale.to(torch.float32).contiguous(), n, h + 2, w + 2)
