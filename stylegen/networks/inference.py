"""The inference form of a Generator: derived weights computed once from a snapshot of its weights.

`Generator.freeze()` (or `freeze(G)`) builds a `FrozenGenerator`: the same call signature and
attributes as the Generator, the same pixels (to float32 rounding), and none of the training
machinery. Every derived constant (scaled affines, squared-weight sums for demodulation, folded
up-sampling kernels, bias + noise premultiplied by the activation gain) is computed once, from a
copy of the weights, and stored as a buffer of the frozen module. There is no cache keyed on the
original tensors, so nothing can go stale: editing G afterwards does not change the frozen form
(freeze again to see the edit), and `copy.deepcopy` or `.to(device)` copy/move plain buffers.

Gradients w.r.t. ws and z still flow (projection optimises ws through a frozen network); the
constants themselves never require grad. Training keeps NVIDIA's arithmetic in
`stylegen.networks.synthesis`; `tests/test_generator.py` checks this form against it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from stylegen.networks.generator import MappedGenerator
from stylegen.networks.layers import FullyConnectedLayer, fold_up2_weight, modconv_frozen
from stylegen.networks.synthesis import RESNET_GAIN, skip_up2
from stylegen.ops import upsample2d

FOLD_UP2 = ("auto", "always", "never")
# Folding the up-sampling FIR into the conv costs 4x the multiply-adds of the transposed conv;
# it pays for batches and for narrow layers (measured on a 2-core CPU: bench/generate.py).
FOLD_MAX_CHANNELS_AT_BATCH_1 = 128
# Sampling runs a batch in micro-batches whose last-layer activations stay near this many
# elements (8 MB of float32): at 256x256 a batch of 8 is ~2.5x slower per image than 8 batches
# of 1 on a 2-core CPU, because [8, 64, 256, 256] tensors stream through memory at every op while
# one image's stay in cache (bench/generate.py).
MICRO_BATCH_ELEMENTS = 2**21


class FrozenAffine(torch.nn.Module):
    """A linear FullyConnectedLayer with its equalized-lr gains applied once: y = x @ W' + b'."""

    def __init__(self, layer: FullyConnectedLayer, gain: float = 1.0):
        super().__init__()
        if layer.activation != "linear" or layer.bias is None:
            raise ValueError("FrozenAffine: only linear layers with a bias")
        w = layer.weight.detach() * (layer.weight_gain * gain)
        self.register_buffer("weight_t", w.t().contiguous())  # [in, out]
        self.register_buffer("bias", (layer.bias.detach() * (layer.bias_gain * gain)).clone())  # [out]

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, w, self.weight_t)


class FrozenSynthesisLayer(torch.nn.Module):
    """SynthesisLayer for inference: modulated conv, noise, bias, lrelu and clamp in one epilogue."""

    def __init__(self, layer: torch.nn.Module, fold_up2: str = "auto", gain: float = 1):
        super().__init__()
        # gain: the caller's extra activation gain (resnet conv1: sqrt(1/2)), which scales the clamp too.
        clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
        self.resolution, self.up, self.conv_clamp = layer.resolution, layer.up, clamp
        self.fold_up2 = fold_up2 if layer.up == 2 and layer.resample_filter.shape == (4, 4) else "never"
        g = layer.act_gain * gain
        w = layer.weight.detach().clone()  # [O, I, 3, 3]
        b = layer.bias.detach()[:, None, None]
        strength = layer.noise_strength.detach()
        self.affine = FrozenAffine(layer.affine)
        self.register_buffer("weight", w)
        self.register_buffer("wsq", w.square().sum(dim=[2, 3]))  # [O, I]: eq. 3's sum over k
        self.register_buffer("folded", fold_up2_weight(w, layer.resample_filter) if self.fold_up2 != "never" else None)
        self.register_buffer("resample_filter", layer.resample_filter.detach().clone())
        # lrelu(g * v) = g * lrelu(v) for g > 0: the gain is folded into every additive term.
        self.register_buffer("bias_g", (b * g).unsqueeze(0))  # [1, O, 1, 1]
        self.register_buffer("bias_noise_g", ((layer.noise_const * strength + b) * g).unsqueeze(0))  # [1, O, r, r]
        self.register_buffer("noise_g", strength * g)  # []
        self.act_gain = g

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """x [N, I, r/up, r/up], w [N, w_dim] -> [N, O, r, r]."""
        styles = self.affine(w)
        # Demodulation (eq. 2-3): sum_(i,k) (w_oik s_i)^2 = sum_i s_i^2 sum_k w_oik^2, times the gain.
        dcoefs = (styles.square() @ self.wsq.t() + 1e-8).rsqrt() * self.act_gain
        fold = self._fold(x)
        kernel, f = (self.folded, None) if fold else (self.weight, self.resample_filter if self.up == 2 else None)
        y, scale = modconv_frozen(x, kernel, styles, dcoefs, folded=fold, up_filter=f)
        base = self.bias_noise_g if noise_mode == "const" else self.bias_g
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            base = base + noise * self.noise_g
        y = torch.addcmul(base, y, scale) if scale is not None else y.add_(base)
        y = F.leaky_relu_(y, 0.2)
        return y.clamp_(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y

    def _fold(self, x: torch.Tensor) -> bool:
        if self.fold_up2 == "auto":
            return x.shape[0] > 1 or x.shape[1] <= FOLD_MAX_CHANNELS_AT_BATCH_1
        return self.fold_up2 == "always"

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return (
            f"in_channels={i}, out_channels={o}, resolution={self.resolution}, up={self.up}, fold_up2={self.fold_up2}"
        )


class FrozenToRGB(torch.nn.Module):
    """ToRGBLayer for inference: modulated 1x1 conv (not demodulated) + bias + clamp."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.conv_clamp = layer.conv_clamp
        self.affine = FrozenAffine(layer.affine, gain=layer.weight_gain)
        self.register_buffer("weight", layer.weight.detach().clone())
        self.register_buffer("bias", layer.bias.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y, _ = modconv_frozen(x, self.weight, self.affine(w), None)
        y = y.add_(self.bias)
        return y.clamp_(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y


class FrozenSkip(torch.nn.Module):
    """The resnet shortcut (SkipLayer) for inference: its gains folded into the 1x1 weight."""

    def __init__(self, layer: torch.nn.Module, gain: float):
        super().__init__()
        self.register_buffer("weight", layer.weight.detach() * (layer.weight_gain * gain))  # [O, I, 1, 1]
        self.register_buffer("resample_filter", layer.resample_filter.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return skip_up2(x, self.weight, self.resample_filter)


class FrozenSynthesisBlock(torch.nn.Module):
    """One resolution: [conv0 (up 2)], conv1, [torgb] (+ the resnet shortcut); the image so far is
    up-sampled and added to this block's torgb."""

    def __init__(self, block: torch.nn.Module, fold_up2: str = "auto"):
        super().__init__()
        self.in_channels, self.resolution = block.in_channels, block.resolution
        self.num_conv, self.num_torgb = block.num_conv, block.num_torgb
        self.resnet = hasattr(block, "skip")
        gain = RESNET_GAIN if self.resnet else 1
        self.register_buffer("resample_filter", block.resample_filter.detach().clone())
        if block.in_channels == 0:
            self.register_buffer("const", block.const.detach().clone())
        else:
            self.conv0 = FrozenSynthesisLayer(block.conv0, fold_up2)
        self.conv1 = FrozenSynthesisLayer(block.conv1, fold_up2, gain=gain)
        self.torgb = FrozenToRGB(block.torgb) if block.num_torgb else None
        self.skip = FrozenSkip(block.skip, gain) if self.resnet else None

    def forward(self, x, img, ws, noise_mode="const"):
        """ws [N, num_conv + num_torgb, w_dim]; returns (features, image so far)."""
        if self.in_channels == 0:
            x = self.conv1(self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1), ws[:, 0], noise_mode)
        else:
            y = self.skip(x) if self.skip is not None else None
            x = self.conv1(self.conv0(x, ws[:, 0], noise_mode), ws[:, 1], noise_mode)
            x = y.add_(x) if y is not None else x
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.torgb is None:
            return x, img
        y = self.torgb(x, ws[:, self.num_conv])
        return x, (img.add_(y) if img is not None else y)


class FrozenSynthesis(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R]; SynthesisNetwork's inference form."""

    def __init__(self, synthesis: torch.nn.Module, fold_up2: str = "auto"):
        super().__init__()
        if fold_up2 not in FOLD_UP2:
            raise ValueError(f"freeze: fold_up2 must be one of {', '.join(FOLD_UP2)}; got {fold_up2!r}")
        self.w_dim, self.num_ws = synthesis.w_dim, synthesis.num_ws
        self.img_resolution, self.img_channels = synthesis.img_resolution, synthesis.img_channels
        self.block_resolutions = list(synthesis.block_resolutions)
        for r in self.block_resolutions:
            setattr(self, f"b{r}", FrozenSynthesisBlock(getattr(synthesis, f"b{r}"), fold_up2))

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """Same contract as SynthesisNetwork.forward; large batches run in micro-batches."""
        from stylegen.networks.synthesis import check_ws_and_noise_mode

        check_ws_and_noise_mode(ws, noise_mode, self.num_ws, self.w_dim)
        ws = ws.to(torch.float32)
        micro = self.micro_batch()
        if ws.shape[0] > micro:
            return torch.cat([self._forward(part, noise_mode) for part in ws.split(micro)])
        return self._forward(ws, noise_mode)

    def _forward(self, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = img = None
        w_idx = 0
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode)
            w_idx += block.num_conv
        return img

    def micro_batch(self) -> int:
        """Images per pass (see MICRO_BATCH_ELEMENTS)."""
        last = getattr(self, f"b{self.img_resolution}").conv1.weight.shape[0]
        return max(1, MICRO_BATCH_ELEMENTS // (last * self.img_resolution**2))

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, resolution={self.img_resolution}"


class FrozenGenerator(MappedGenerator):
    """Inference-only Generator: `G(z, c, truncation_psi, truncation_cutoff, noise_mode)`,
    `.mapping(...)`, `.synthesis(ws, noise_mode)` and the attributes z_dim, c_dim, w_dim, num_ws,
    img_resolution, img_channels, config. Built by `Generator.freeze()`; nothing in it requires grad."""

    def __init__(self, G: torch.nn.Module, fold_up2: str = "auto"):
        super().__init__()
        self.config = G.config
        self.z_dim, self.c_dim, self.w_dim = G.z_dim, G.c_dim, G.w_dim
        self.img_resolution, self.img_channels, self.num_ws = G.img_resolution, G.img_channels, G.num_ws
        self.mapping = copy.deepcopy(G.mapping).eval().requires_grad_(False)
        self.synthesis = FrozenSynthesis(G.synthesis, fold_up2)
        self.eval()

    def train(self, mode: bool = True) -> FrozenGenerator:
        if mode:
            raise RuntimeError("a FrozenGenerator cannot be trained: train the Generator it was frozen from")
        return super().train(False)

    def extra_repr(self) -> str:
        return f"config={self.config}, frozen"


def freeze(G: torch.nn.Module, fold_up2: str = "auto") -> FrozenGenerator:
    """The inference form of Generator G (see the module docstring); G itself is not changed.

    fold_up2: 'auto' (fold the up-sampling convs for batches > 1 and narrow layers, the faster
    choice measured on a CPU), 'always' or 'never'.
    """
    if isinstance(G, FrozenGenerator):
        return G
    with torch.no_grad():
        return FrozenGenerator(G, fold_up2).to(next(G.parameters()).device)
