"""Building blocks of the StyleGAN2 generator: equalized-lr dense layer and modulated convolution.

Numerics follow NVIDIA's `training/networks.py` (stylegan2-ada-pytorch) so that their published
networks give their pixels; see docs/formats.md "Numerics".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stylegen.ops import bias_act, upfirdn2d


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate (Karras et al. 2018, sec. 4.1).

    The stored weight is N(0, 1) / lr_multiplier and is scaled at run time by
    lr_multiplier / sqrt(in_features); the bias by lr_multiplier.
    """

    def __init__(
        self,
        in_features: int,  # number of input features
        out_features: int,  # number of output features
        bias: bool = True,  # learn an additive bias
        activation: str = "linear",  # activation of stylegen.ops.bias_act
        lr_multiplier: float = 1.0,  # learning-rate multiplier (0.01 in the mapping network)
        bias_init: float = 0.0,  # initial bias (1 for the style affines)
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_features] -> [N, out_features]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along `dim` (pixel norm of the latent)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def conv2d_up2(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """3x3 convolution at twice the resolution: NVIDIA's conv2d_resample(up=2, padding=1, flip_weight=False).

    x [N, G*I, H, W], w [G*O, I, kh, kw], f the [4, 4] (or [4]) FIR filter.
    Returns [N, G*O, 2H, 2W]: transposed conv, stride 2, then the FIR filter with gain 4.
    """
    out_channels, in_per_group, kh, kw = w.shape
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    x = F.conv_transpose2d(x, w, stride=2, groups=groups)
    # conv2d_resample's padding for up=2 and a 'same' kernel (1 on each side for 4 taps, 3x3).
    fw, p = f.shape[-1], kw // 2
    pad = [p + (fw + 1) // 2 - (kw - 1), p + (fw - 2) // 2 - (kw - 2)] * 2
    return upfirdn2d(x, f, padding=pad, gain=4)


def fold_up2_weight(w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """conv2d_up2's transposed conv and FIR filter as one polyphase 3x3 conv weight.

    w [O, I, 3, 3], f [4, 4] -> [4*O, I, 3, 3] such that
    pixel_shuffle(conv2d(x, result, padding=1), 2) == conv2d_up2(x, w, f).
    The two linear filters combine into one 6x6 transposed-conv kernel (stride 2, padding 2);
    each of its 4 output phases is a 3x3 correlation of the low-resolution input.
    """
    o, i, kh, kw = w.shape
    if (kh, kw) != (3, 3) or f.shape != (4, 4):
        raise ValueError(f"fold_up2_weight: needs a 3x3 kernel and a 4x4 filter; got {kh}x{kw}, {tuple(f.shape)}")
    k = F.conv2d(F.pad(w.reshape(o * i, 1, 3, 3), [3, 3, 3, 3]), f.to(w.dtype)[None, None]) * 4
    k = k.reshape(o, i, 6, 6)
    phases = [k[:, :, ay::2, ax::2].flip([2, 3]) for ay in (0, 1) for ax in (0, 1)]
    return torch.stack(phases, dim=1).reshape(4 * o, i, 3, 3)  # pixel_shuffle order: o*4 + ay*2 + ax


def _conv(x, w, up, resample_filter, groups=1):
    if up == 2:
        return conv2d_up2(x, w, resample_filter, groups=groups)
    return F.conv2d(x, w, padding=w.shape[-1] // 2, groups=groups)


def modulated_conv2d(
    x: torch.Tensor,  # input activations [N, I, H, W]
    weight: torch.Tensor,  # shared conv weight [O, I, k, k]
    styles: torch.Tensor,  # per-sample input-channel scales [N, I]
    noise: torch.Tensor | None = None,  # added after the conv: [N, 1, R, R], [R, R] or None
    up: int = 1,  # 1 or 2 (transposed conv + FIR filter)
    resample_filter: torch.Tensor | None = None,  # FIR filter for up=2
    demodulate: bool = True,  # normalize each output channel to unit expected variance
    fused: bool = True,  # grouped conv with per-sample weights, else scale activations
) -> torch.Tensor:
    """Modulated convolution of StyleGAN2 (Karras et al. 2020, eq. 1-3). Returns [N, O, R, R]."""
    n = x.shape[0]
    _out_channels, in_channels, kh, kw = weight.shape
    # Eq. 1-2: w' = w * s (per sample); demodulation coefficients rsqrt(sum w'^2 + eps).
    w = dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = _conv(x, weight.to(x.dtype), up, resample_filter)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x.add_(noise.to(x.dtype)) if noise is not None else x
    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    # Eq. 3 as one grouped convolution: the batch becomes the group axis.
    x = x.reshape(1, -1, *x.shape[2:])
    x = _conv(x, w.reshape(-1, in_channels, kh, kw).to(x.dtype), up, resample_filter, groups=n)
    x = x.reshape(n, -1, *x.shape[2:])
    return x.add_(noise) if noise is not None else x


def modconv_frozen(
    x: torch.Tensor,  # input activations [N, I, H, W]
    kernel: torch.Tensor,  # frozen shared kernel [P*O, I, k, k]; P = 4 if folded (fold_up2_weight)
    styles: torch.Tensor,  # [N, I]
    dcoefs: torch.Tensor | None,  # demodulation coefficients [N, O], or None
    folded: bool = False,  # kernel is a folded up-sampling kernel: pixel-shuffle the result
    up_filter: torch.Tensor | None = None,  # unfolded up-sampling: conv2d_up2 with this FIR filter
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Modulated conv for inference; returns (y, scale): the result is y * scale (scale [N, O, 1, 1]).

    Picks, per call, the form that touches fewer elements: per-sample weights in one grouped
    conv (cheap when the kernel is small next to the activations, i.e. at high resolution) or
    the activations scaled around one shared conv. The output scale is left to the caller so it
    can fuse it with the bias and noise.
    """
    n, i = styles.shape
    pixels = x.shape[2] * x.shape[3]
    if 2 * kernel.numel() < (i + kernel.shape[0]) * pixels:
        w = kernel.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
        if dcoefs is not None:
            w = w * dcoefs.repeat_interleave(4 if folded else 1, dim=1).reshape(n, -1, 1, 1, 1)
        y = _frozen_conv(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, i, *kernel.shape[2:]), up_filter, n)
        y, scale = y.reshape(n, -1, *y.shape[2:]), None
    else:
        y = _frozen_conv(x * styles.reshape(n, -1, 1, 1), kernel, up_filter, 1)
        scale = None if dcoefs is None else dcoefs.reshape(n, -1, 1, 1)
    return (F.pixel_shuffle(y, 2) if folded else y), scale


def _frozen_conv(x, w, up_filter, groups):
    if up_filter is not None:
        return conv2d_up2(x, w, up_filter, groups=groups)
    return F.conv2d(x, w, padding=w.shape[-1] // 2, groups=groups)
