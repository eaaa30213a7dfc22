"""Synthesis network: ws -> image, a 4x4 constant grown by modulated convs (StyleGAN2 fig. 2, 7b).

Module and parameter names are NVIDIA's (`b{res}.conv0/conv1/torgb`), so their state dicts load.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stylegen.networks.layers import FullyConnectedLayer, fold_up2_weight, modconv_frozen, modulated_conv2d
from stylegen.ops import bias_act, setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")
# Inference speed-up: transposed conv + FIR filter of the up-sampling convs as one cached
# polyphase conv (see fold_up2_weight); the plain path is kept for training and reference.
FOLD_UP2 = True
FOLD_MAX_CHANNELS_AT_BATCH_1 = 128
# Inference (eval mode, no gradient to the weights): cached derived weights and fused epilogues.
FAST_INFERENCE = True
# Sampling runs the batch in micro-batches whose last-layer activations stay near this many
# elements (8 MB of float32): at 256x256 a batch of 8 is ~2.5x slower per image than 8 batches
# of 1 on our 2-core CPU, because [8, 64, 256, 256] tensors stream through memory at every op
# while one image's stay in cache (bench/generate.py).
MICRO_BATCH_ELEMENTS = 2**21


def use_fused(x: torch.Tensor, training: bool) -> bool:
    """Default of fused_modconv: False, the shared-weight conv with activations scaled around it.

    With frozen weights in eval mode that path becomes `SynthesisLayer._forward_frozen`, which
    picks per layer and batch between per-sample weights in a grouped conv and scaled
    activations (`modconv_frozen`, whichever touches fewer elements); with gradients to the
    weights it is NVIDIA's training path. fused_modconv=True gives NVIDIA's inference arithmetic
    (grouped conv, transposed conv + FIR) and is the reference the fast path is tested against.
    """
    return False


def _frozen(weight: torch.Tensor) -> bool:
    """True when no gradient can flow to `weight`, so derived weights may be cached."""
    return not (torch.is_grad_enabled() and weight.requires_grad)


def _cached(module: torch.nn.Module, make) -> dict:
    """make() for a frozen module, cached until any of its parameters or buffers changes.

    The key holds every tensor's storage and version counter (bumped by in-place updates such as
    load_state_dict) and whether inference mode is on: tensors made under inference_mode must
    not reach autograd outside it.
    """
    tensors = list(module.parameters()) + list(module.buffers())
    try:
        key = tuple((t.data_ptr(), t._version) for t in tensors) + (torch.is_inference_mode_enabled(),)
    except RuntimeError:  # inference tensors have no version counter: do not cache
        return make()
    cache = module.__dict__.setdefault("_frozen_cache", {})
    if key not in cache:
        if len(cache) > 1:  # one entry per mode (inference / plain no-grad)
            cache.clear()
        cache[key] = make()
    return cache[key]


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

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", fused: bool = True):
        """x [N, I, r/up, r/up], w [N, w_dim] -> [N, O, r, r]."""
        styles = self.affine(w)
        foldable = self.up == 1 or (FOLD_UP2 and self.resample_filter.shape == (4, 4))
        if not fused and not self.training and FAST_INFERENCE and foldable and _frozen(self.weight):
            return self._forward_frozen(x, styles, noise_mode)
        noise = None
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise, self.up, self.resample_filter, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=self.act_gain, clamp=self.conv_clamp)

    def _forward_frozen(self, x: torch.Tensor, styles: torch.Tensor, noise_mode: str) -> torch.Tensor:
        """Inference: cached kernel and squared-weight sums, one fused epilogue, in-place lrelu."""
        c = _cached(self, self._frozen_constants)
        # Demodulation: sum_(i,k) (w_oik s_i)^2 = sum_i s_i^2 sum_k w_oik^2 (eq. 2-3), times the act gain.
        dcoefs = (styles.square() @ c["wsq"].t() + 1e-8).rsqrt() * self.act_gain
        # Folding the up-sampling FIR into the conv (4x the multiply-adds of the transposed conv)
        # pays for batches and narrow layers; measured on a 2-core CPU (bench/generate.py).
        fold = self.up == 2 and (x.shape[0] > 1 or x.shape[1] <= FOLD_MAX_CHANNELS_AT_BATCH_1)
        kernel, f = (c["folded"], None) if fold else (c["weight"], self.resample_filter if self.up == 2 else None)
        y, scale = modconv_frozen(x, kernel, styles, dcoefs, folded=fold, up_filter=f)
        base = c["bias_noise"] if noise_mode == "const" else c["bias"]
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            base = base + noise * (self.noise_strength * self.act_gain)
        y = torch.addcmul(base, y, scale) if scale is not None else y.add_(base)
        # lrelu(g * v) = g * lrelu(v) for g > 0: the gain is already folded into the terms above.
        y = F.leaky_relu_(y, 0.2)
        return y.clamp_(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y

    def _frozen_constants(self) -> dict:
        g, b = self.act_gain, self.bias.detach()[:, None, None]
        w = self.weight.detach()
        return {
            "wsq": w.square().sum(dim=[2, 3]),  # [O, I]
            "weight": w,
            "folded": fold_up2_weight(w, self.resample_filter) if self.up == 2 else None,
            "bias": (b * g).unsqueeze(0),  # [1, O, 1, 1]
            "bias_noise": ((self.noise_const * self.noise_strength.detach() + b) * g).unsqueeze(0),  # [1, O, r, r]
        }

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return f"in_channels={i}, out_channels={o}, resolution={self.resolution}, up={self.up}"


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
        if not fused and not self.training and FAST_INFERENCE and _frozen(self.weight):
            c = _cached(self, lambda: {"kernel": self.weight.detach()})
            y, _ = modconv_frozen(x, c["kernel"], styles, None, folded=False)
            y = y.add_(self.bias.detach().reshape(1, -1, 1, 1))
            return y.clamp_(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution of the skip generator: [conv0 (up 2)], conv1, torgb."""

    def __init__(
        self,
        in_channels: int,  # 0 for the first block (learned 4x4 constant input)
        out_channels: int,  # feature maps at this resolution
        w_dim: int,  # intermediate latent size
        resolution: int,  # this block's resolution
        img_channels: int,  # output image channels
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
        resample_filter: tuple = (1, 3, 3, 1),  # FIR filter of the up-sampling
    ):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        kw = {"w_dim": w_dim, "resolution": resolution, "conv_clamp": conv_clamp, "resample_filter": resample_filter}
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **kw)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **kw)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x, img, ws, noise_mode="const", fused=None):
        """ws [N, num_conv + num_torgb, w_dim]; returns (features, image so far)."""
        if fused is None:
            fused = use_fused(ws, self.training)
        if self.in_channels == 0:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, ws[:, 0], noise_mode, fused)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, fused)
            x = self.conv1(x, ws[:, 1], noise_mode, fused)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, ws[:, self.num_conv], fused).to(torch.float32)
        return x, (img.add_(y) if img is not None else y)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, in_channels={self.in_channels}"


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
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.num_ws = 0
        for r in self.block_resolutions:
            in_channels = channels[r // 2] if r > 4 else 0
            block = SynthesisBlock(
                in_channels, channels[r], w_dim, r, img_channels, conv_clamp=conv_clamp, resample_filter=resample_filter
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{r}", block)
        self.num_ws += 1  # the last block's torgb

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused_modconv: bool | None = None):
        """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] float32 (~[-1, 1]).

        noise_mode: 'const' (the stored noise), 'random' (fresh noise) or 'none'.
        fused_modconv: None = pick the faster form for the batch (see `use_fused`).
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis: ws must be [N, {self.num_ws}, {self.w_dim}]; got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"synthesis: noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")
        ws = ws.to(torch.float32)
        micro = self.micro_batch()
        if fused_modconv is None and ws.shape[0] > micro and not self.training and not torch.is_grad_enabled():
            return torch.cat([self.forward(part, noise_mode) for part in ws.split(micro)])
        x = img = None
        w_idx = 0
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            # Each torgb shares its ws index with the next block's conv0 (DESIGN.md).
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode, fused_modconv)
            w_idx += block.num_conv
        return img

    def micro_batch(self) -> int:
        """Images per pass when sampling (see MICRO_BATCH_ELEMENTS)."""
        last = getattr(self, f"b{self.img_resolution}").conv1.weight.shape[0]
        return max(1, MICRO_BATCH_ELEMENTS // (last * self.img_resolution**2))

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, resolution={self.img_resolution}"
