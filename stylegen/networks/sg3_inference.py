"""The inference form of a StyleGAN3 generator: `Generator3.freeze()`.

A deep copy of the generator whose synthesis layers are replaced by `FrozenSynthesisLayer3`:
every constant of StyleGAN3's modulated convolution (the weights normalised to unit mean square,
their squared sums over the kernel for the demodulation, the tracked input gain, the affines'
equalized-lr gains) is computed once, from a copy of the weights, and stored as a buffer. Per
call only the styles are computed, and the style and demodulation scales go into one small
[O, I, k, k] weight tensor (one image) or around one shared convolution of the whole batch
(several images), never the batch of per-image weights NVIDIA's grouped convolution builds.
The same pixels as the trainable form to float32 rounding (tests/test_sg3_networks.py); the
input (Fourier features, its transform buffer) and the mapping are the trainable modules, copied.
Gradients w.r.t. ws still flow (projection), the constants never require grad.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from stylegen.networks import sg3_winograd
from stylegen.networks.inference import FrozenAffine
from stylegen.ops import filtered_lrelu


class FrozenSynthesisLayer3(torch.nn.Module):
    """SynthesisLayer3 for inference: modulated conv (padding k - 1), then the filtered lrelu."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        spec = self.spec = layer.spec
        k = spec.conv_kernel
        self.demodulate = not spec.is_torgb
        w = layer.weight.detach().clone()  # [O, I, k, k]
        if self.demodulate:
            w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
            self.affine = FrozenAffine(layer.affine)
        else:  # the RGB layer scales its styles by 1 / sqrt(fan-in) instead
            self.affine = FrozenAffine(layer.affine, gain=1 / (spec.in_channels * k * k) ** 0.5)
        self.register_buffer("weight", w)
        self.register_buffer("wsq", w.square().sum(dim=[2, 3]))  # [O, I]: the demodulation's sum over k
        self.register_buffer("input_gain", layer.magnitude_ema.detach().rsqrt().clone())  # []
        self.register_buffer("bias", layer.bias.detach().clone())
        for name in ("up_filter", "down_filter"):
            f = getattr(layer, name)
            self.register_buffer(name, None if f is None else f.detach().clone())
        self.gain, self.slope = (1.0, 1.0) if spec.is_torgb else (2**0.5, 0.2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        """x [N, in_channels, in_h, in_w], w [N, w_dim] -> [N, out_channels, out_h, out_w]."""
        if update_emas:
            raise ValueError("a frozen StyleGAN3 generator tracks no magnitudes: update_emas needs the trainable one")
        n, spec = x.shape[0], self.spec
        x = x.contiguous()  # the Fourier input is channels_last; the CPU op streams NCHW rows
        styles = self.affine(w)  # [N, I]
        if self.demodulate:  # NVIDIA normalises over the whole batch's styles (demodulation cancels it)
            styles = styles * styles.square().mean().rsqrt()
            scale = (styles.square() @ self.wsq.t() + 1e-8).rsqrt() * self.input_gain  # [N, O]
        else:
            scale = self.input_gain.expand(n, self.weight.shape[0])
        pad = spec.conv_kernel - 1
        plugin = sg3_winograd.plugin_for(x, styles) if spec.conv_kernel in (1, 3) else None
        if plugin is not None and spec.conv_kernel == 3:  # CPU inference: Winograd, both scales in its transforms
            u = self._winograd_weights()
            y = sg3_winograd.conv3x3_full(plugin, x, u.a, styles, scale, u_packed=u.get(plugin))
        elif spec.conv_kernel == 1:  # -R and the RGB layer: a matrix product, no convolution machinery
            wmod = self.weight.reshape(self.weight.shape[:2]).unsqueeze(0) * (scale.unsqueeze(2) * styles.unsqueeze(1))
            y = sg3_winograd.matmul(plugin, wmod.to(x.dtype), x.reshape(n, x.shape[1], -1)).reshape(n, -1, *x.shape[2:])
        elif n == 1:  # one image: fold both scales into the small weight tensor
            wmod = self.weight * (scale.reshape(-1, 1) * styles.reshape(1, -1)).reshape(*self.weight.shape[:2], 1, 1)
            y = F.conv2d(x, wmod.to(x.dtype), padding=pad)
        else:  # a batch: one shared conv of the style-scaled activations, then the output scale
            y = F.conv2d(x * styles.reshape(n, -1, 1, 1).to(x.dtype), self.weight.to(x.dtype), padding=pad)
            y = y * scale.reshape(n, -1, 1, 1).to(y.dtype)
        return filtered_lrelu(
            y,
            self.up_filter,
            self.down_filter,
            self.bias.to(y.dtype),
            up=spec.up_factor,
            down=spec.down_factor,
            padding=list(spec.padding),
            gain=self.gain,
            slope=self.slope,
            clamp=spec.conv_clamp,
        )

    def _winograd_weights(self) -> sg3_winograd.PackedWeights:
        """The weights' Winograd transform [36, O, I] (and its packing for the plugin's GEMM), made on
        first use (not a buffer: CPU only)."""
        if getattr(self, "_winograd", None) is None or self._winograd.a.device != self.weight.device:
            self._winograd = sg3_winograd.PackedWeights(sg3_winograd.winograd_weights(self.weight))
        return self._winograd

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.name}: in={s.in_channels}x{list(s.in_size)}, out={s.out_channels}x{list(s.out_size)}, frozen"


def freeze3(G: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of a Generator3 with frozen synthesis layers; requires_grad False throughout."""
    F3 = copy.deepcopy(G).eval().requires_grad_(False)
    for name in F3.synthesis.layer_names:
        setattr(F3.synthesis, name, FrozenSynthesisLayer3(getattr(F3.synthesis, name)))
    F3.frozen = True
    return F3
