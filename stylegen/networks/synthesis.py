"""Synthesis network: ws -> image, a 4x4 constant grown by modulated convs (StyleGAN2 fig. 2, 7).

Three architectures (StyleGAN2 fig. 7), as in NVIDIA's `training/networks.py`:
- 'skip' (config E/F, every StyleGAN2-ADA default): each block has a toRGB, and the image so far is
  up-sampled and added to it;
- 'orig': one toRGB, in the last block;
- 'resnet': one toRGB, in the last block, and each block r > 4 adds an up-sampled 1x1 projection of
  its input (`skip`) to its output, both scaled by sqrt(1/2).
Module and parameter names are NVIDIA's (`b{res}.conv0/conv1/torgb/skip`), so their state dicts load.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stylegen.networks.layers import FullyConnectedLayer, modulated_conv2d
from stylegen.ops import bias_act, setup_filter, upfirdn2d, upsample2d

NOISE_MODES = ("random", "const", "none")
ARCHITECTURES = ("orig", "skip", "resnet")
# The resnet block's two branches are each scaled by sqrt(1/2), keeping unit variance (fig. 7c).
RESNET_GAIN = math.sqrt(0.5)


def check_ws_and_noise_mode(ws: torch.Tensor, noise_mode: str, num_ws: int, w_dim: int) -> None:
    """ValueError unless ws is [N, num_ws, w_dim] and noise_mode is one of NOISE_MODES."""
    if ws.ndim != 3 or ws.shape[1:] != (num_ws, w_dim):
        raise ValueError(f"synthesis: ws must be [N, {num_ws}, {w_dim}]; got {tuple(ws.shape)}")
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"synthesis: noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally up x2) + noise + bias + lrelu."""

    def __init__(
        self,
        in_channels: int,  # input feature maps
        out_channels: int,  # output feature maps
        w_dim: int,  # intermediate latent size
        resolution: int,  # output resolution
        up: int = 1,  # 1, or 2 for the first conv of a block
        conv_clamp: float | None = None,  # clamp the output to +-conv_clamp
        resample_filter: tuple = (1, 3, 3, 1),  # FIR filter of the up-sampling
    ):
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.act_gain = math.sqrt(2)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", fused: bool = True, gain: float = 1
    ) -> torch.Tensor:
        """x [N, I, r/up, r/up], w [N, w_dim] -> [N, O, r, r]; gain scales the activation and the clamp."""
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise, self.up, self.resample_filter, fused=fused)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return f"in_channels={i}, out_channels={o}, resolution={self.resolution}, up={self.up}"


def skip_up2(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """NVIDIA's conv2d_resample(x, w, f, up=2) for a 1x1 kernel: the conv, then upfirdn2d (up 2, gain 4).

    x [N, I, H, W], w [O, I, 1, 1], f the [4, 4] (or [taps]) FIR filter -> [N, O, 2H, 2W].
    """
    fw = f.shape[-1]
    x = F.conv2d(x, w)
    return upfirdn2d(x, f, up=2, padding=[(fw + 1) // 2, (fw - 2) // 2] * 2, gain=4)


class SkipLayer(torch.nn.Module):
    """The resnet generator's shortcut: 1x1 conv (equalized lr, no bias) at twice the resolution.

    NVIDIA's `Conv2dLayer(in, out, kernel_size=1, bias=False, up=2)`: same parameter names.
    """

    def __init__(self, in_channels: int, out_channels: int, resample_filter: tuple = (1, 3, 3, 1)):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """x [N, I, H, W] -> [N, O, 2H, 2W], times gain."""
        x = skip_up2(x, (self.weight * self.weight_gain).to(x.dtype), self.resample_filter)
        return bias_act(x, gain=gain)

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return f"in_channels={i}, out_channels={o}, up=2"


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels, not demodulated."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution: [conv0 (up 2)], conv1, [torgb] (+ the resnet shortcut `skip`)."""

    def __init__(
        self,
        in_channels: int,  # 0 for the first block (learned 4x4 constant input)
        out_channels: int,  # feature maps at this resolution
        w_dim: int,  # intermediate latent size
        resolution: int,  # this block's resolution
        img_channels: int,  # output image channels
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
        resample_filter: tuple = (1, 3, 3, 1),  # FIR filter of the up-sampling
        architecture: str = "skip",  # 'orig', 'skip' or 'resnet' (module docstring)
        is_last: bool = False,  # the last block (the only one with a torgb unless 'skip')
    ):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"SynthesisBlock: architecture must be one of {', '.join(ARCHITECTURES)}")
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, architecture
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        kw = {"w_dim": w_dim, "resolution": resolution, "conv_clamp": conv_clamp, "resample_filter": resample_filter}
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **kw)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **kw)
        self.num_torgb = 1 if is_last or architecture == "skip" else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        if in_channels != 0 and architecture == "resnet":
            self.skip = SkipLayer(in_channels, out_channels, resample_filter)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x, img, ws, noise_mode="const", fused=None):
        """ws [N, num_conv + num_torgb, w_dim]; returns (features, image so far)."""
        if fused is None:
            # NVIDIA's default: per-sample weights in one grouped conv for inference, the
            # shared-weight conv with scaled activations for training.
            fused = not self.training
        if self.in_channels == 0:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, ws[:, 0], noise_mode, fused)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=RESNET_GAIN)
            x = self.conv0(x, ws[:, 0], noise_mode, fused)
            x = y.add_(self.conv1(x, ws[:, 1], noise_mode, fused, gain=RESNET_GAIN))
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, fused)
            x = self.conv1(x, ws[:, 1], noise_mode, fused)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            y = self.torgb(x, ws[:, self.num_conv], fused).to(torch.float32)
            img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, in_channels={self.in_channels}, architecture={self.architecture}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R]."""

    def __init__(
        self,
        w_dim: int,  # intermediate latent size
        img_resolution: int,  # output resolution, a power of two >= 4
        img_channels: int,  # output image channels
        channel_base: int = 32768,  # feature maps at resolution r: min(channel_base // r, channel_max)
        channel_max: int = 512,  # maximum feature maps
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
        resample_filter: tuple = (1, 3, 3, 1),  # FIR filter of all up-sampling
        architecture: str = "skip",  # 'orig', 'skip' or 'resnet' (module docstring)
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.architecture = architecture
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.num_ws = 0
        for r in self.block_resolutions:
            in_channels = channels[r // 2] if r > 4 else 0
            block = SynthesisBlock(
                in_channels, channels[r], w_dim, r, img_channels, conv_clamp=conv_clamp,
                resample_filter=resample_filter, architecture=architecture, is_last=r == img_resolution,
            )  # fmt: skip
            self.num_ws += block.num_conv
            setattr(self, f"b{r}", block)
        self.num_ws += 1  # the last block's torgb (the others share theirs with the next conv0)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused_modconv: bool | None = None):
        """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] float32 (~[-1, 1]).

        noise_mode: 'const' (the stored noise), 'random' (fresh noise) or 'none'.
        fused_modconv: None = NVIDIA's choice (grouped conv in eval mode, scaled activations in
        training). For fast sampling use the inference form, `Generator.freeze()`.
        """
        check_ws_and_noise_mode(ws, noise_mode, self.num_ws, self.w_dim)
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            # Each torgb shares its ws index with the next block's conv0 (DESIGN.md).
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode, fused_modconv)
            w_idx += block.num_conv
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, resolution={self.img_resolution}, {self.architecture}"
