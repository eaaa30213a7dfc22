"""StyleGAN3 (alias-free) synthesis network: Fourier-feature input and filtered layers.

Karras et al. 2021, "Alias-Free Generative Adversarial Networks". Numerics follow NVIDIA's
`training/networks_stylegan3.py` so their networks give their pixels; the facts are in
../shared/compat/FORMAT.md ("StyleGAN3 network pickles"). Every layer's sizes, rates, filters
and padding come from a spec, read from a pickle or designed by `sg3_design.design_config3`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stylegen.errors import InputError
from stylegen.networks.layers import FullyConnectedLayer
from stylegen.ops import filtered_lrelu


@dataclass(frozen=True)
class InputSpec:
    """The Fourier-feature input: channels, size (width, height), sampling rate, bandwidth."""

    channels: int
    size: tuple[int, int]
    sampling_rate: float
    bandwidth: float


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer as NVIDIA's constructor laid it out (sizes are (width, height))."""

    name: str  # attribute name, e.g. 'L4_52_64': parameter names depend on it
    is_torgb: bool  # the last layer: linear, no demodulation, 1x1 kernel
    is_critically_sampled: bool  # informational (it chose the filters)
    in_channels: int
    out_channels: int
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    in_sampling_rate: float
    out_sampling_rate: float
    in_cutoff: float  # informational: the stored filters are authoritative
    out_cutoff: float
    conv_kernel: int  # 3 (T) or 1 (R and the RGB layer)
    up_factor: int
    down_factor: int
    up_taps: int  # 1 = no up filter
    down_taps: int  # 1 = no down filter
    down_radial: bool  # the down filter is 2-D [taps, taps]
    padding: tuple[int, int, int, int]  # filtered_lrelu padding (x0, x1, y0, y1)
    conv_clamp: float | None  # clamp inside filtered_lrelu
    magnitude_ema_beta: float = 0.999  # decay of the tracked input magnitude (training only)
    in_half_width: float | None = None  # transition half-widths f_h the filters were designed with
    out_half_width: float | None = None  # (None in specs saved before they were recorded)

    def filter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the stored filter buffers (a filter of one tap is absent)."""
        shapes = {}
        if self.up_taps > 1:
            shapes["up_filter"] = (self.up_taps,)
        if self.down_taps > 1:
            shapes["down_filter"] = (self.down_taps,) * (2 if self.down_radial else 1)
        return shapes

    def check(self) -> None:
        """ValueError unless the sizes, factors, taps and padding fit together."""
        for key in ("in_channels", "out_channels", "conv_kernel", "up_factor", "down_factor", "up_taps", "down_taps"):
            if getattr(self, key) < 1:
                raise ValueError(f"layer {self.name}: {key} must be >= 1; got {getattr(self, key)}")
        for axis in (0, 1):  # filtered_lrelu's output size (FORMAT.md) must be out_size
            pad = self.padding[2 * axis] + self.padding[2 * axis + 1]
            n = (self.in_size[axis] + self.conv_kernel - 1) * self.up_factor + pad
            n = (n - (self.up_taps - 1) - (self.down_taps - 1) + self.down_factor - 1) // self.down_factor
            if n != self.out_size[axis]:
                raise ValueError(
                    f"layer {self.name}: padding {list(self.padding)} gives size {n}, not {self.out_size[axis]}"
                )


class SynthesisInput(torch.nn.Module):
    """ws[0] -> Fourier features [N, C, H, W], rotated and translated by an affine of w."""

    def __init__(self, w_dim: int, spec: InputSpec):
        super().__init__()
        self.w_dim, self.spec = w_dim, spec
        c = spec.channels
        self.weight = torch.nn.Parameter(torch.zeros([c, c]))
        self.affine = FullyConnectedLayer(w_dim, 4, bias_init=0)
        self.register_buffer("transform", torch.eye(3))  # inverse of the user's transform of the image
        self.register_buffer("freqs", torch.zeros([c, 2]))
        self.register_buffer("phases", torch.zeros([c]))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w [N, w_dim] -> [N, channels, height, width] float32."""
        n, spec = w.shape[0], self.spec
        # t = (cos, sin, tx, ty): rotation then translation, then the user's transform.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=w.device).repeat([n, 1, 1])
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device).repeat([n, 1, 1])
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform.unsqueeze(0)  # [N, 3, 3]
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ m[:, :2, :2]  # [N, C, 2]
        # Out-of-band frequencies (only a scaling user transform makes them) fade out.
        band = spec.sampling_rate / 2 - spec.bandwidth
        amplitudes = (1 - (freqs.norm(dim=2) - spec.bandwidth) / band).clamp(0, 1)  # [N, C]
        # Pixel centres at ((x + 0.5 - W/2) / rate, (y + 0.5 - H/2) / rate), as affine_grid.
        width, height = spec.size
        theta = torch.zeros([1, 2, 3], device=w.device)
        theta[0, 0, 0], theta[0, 1, 1] = 0.5 * width / spec.sampling_rate, 0.5 * height / spec.sampling_rate
        grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)  # [1, H, W, 2]
        x = grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)  # [N, H, W, 1, C]
        x = x.squeeze(3) + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (2 * math.pi)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(spec.channels)).t()  # [N, H, W, C]
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"channels={s.channels}, size={list(s.size)}, sampling_rate={s.sampling_rate:g}, bandwidth={s.bandwidth:g}"
        )


def modulated_conv2d_sg3(
    x: torch.Tensor,  # [N, I, H, W]
    weight: torch.Tensor,  # [O, I, k, k]
    styles: torch.Tensor,  # [N, I]
    demodulate: bool,  # False for the RGB layer
    input_gain: torch.Tensor,  # 0-d: rsqrt of the tracked input magnitude
) -> torch.Tensor:
    """StyleGAN3's modulated conv (grouped, padding k - 1): [N, O, H + k - 1, W + k - 1].

    Unlike StyleGAN2, weights and styles are first normalised to unit mean square (which keeps
    float16 in range; demodulation cancels it up to the 1e-8), and the input gain scales the
    weights after demodulation.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(n, 1, in_channels, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, out_channels, 1, 1, 1)
    w = w * input_gain
    x = x.reshape(1, n * in_channels, *x.shape[2:])
    x = F.conv2d(x, w.reshape(n * out_channels, in_channels, kh, kw).to(x.dtype), padding=kh - 1, groups=n)
    return x.reshape(n, out_channels, *x.shape[2:])


class SynthesisLayer3(torch.nn.Module):
    """Modulated conv, then bias + filtered leaky ReLU (up, lrelu, clamp, down) in one op."""

    def __init__(self, w_dim: int, spec: LayerSpec):
        super().__init__()
        spec.check()
        self.w_dim, self.spec = w_dim, spec
        k = spec.conv_kernel
        self.affine = FullyConnectedLayer(w_dim, spec.in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.zeros([spec.out_channels, spec.in_channels, k, k]))
        self.bias = torch.nn.Parameter(torch.zeros([spec.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        shapes = spec.filter_shapes()
        for name in ("up_filter", "down_filter"):  # NVIDIA registers a one-tap filter as None
            self.register_buffer(name, torch.zeros(shapes[name]) if name in shapes else None)

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        """x [N, in_channels, in_h, in_w], w [N, w_dim] -> [N, out_channels, out_h, out_w]."""
        spec = self.spec
        if update_emas:  # training only: the inference pixels use the stored value
            magnitude = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, spec.magnitude_ema_beta))
        styles = self.affine(w)
        if spec.is_torgb:
            styles = styles * (1 / math.sqrt(spec.in_channels * spec.conv_kernel**2))
        x = modulated_conv2d_sg3(x, self.weight, styles, not spec.is_torgb, self.magnitude_ema.rsqrt())
        gain, slope = (1.0, 1.0) if spec.is_torgb else (math.sqrt(2), 0.2)
        return filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            self.bias.to(x.dtype),
            up=spec.up_factor,
            down=spec.down_factor,
            padding=list(spec.padding),
            gain=gain,
            slope=slope,
            clamp=spec.conv_clamp,
        )

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"in={s.in_channels}x{list(s.in_size)}@{s.in_sampling_rate:g}, "
            f"out={s.out_channels}x{list(s.out_size)}@{s.out_sampling_rate:g}, up={s.up_factor}, down={s.down_factor}, "
            f"torgb={s.is_torgb}"
        )


NOISE_MODES = ("const", "random", "none")


class SynthesisNetwork3(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R]: input (ws[0]), then layer i (ws[i + 1])."""

    def __init__(self, w_dim: int, input_spec: InputSpec, layers: tuple[LayerSpec, ...], output_scale: float):
        super().__init__()
        self.w_dim, self.output_scale = w_dim, output_scale
        self.num_ws = len(layers) + 1
        last = layers[-1]
        self.img_channels, self.img_resolution = last.out_channels, last.out_size[0]
        self.input = SynthesisInput(w_dim, input_spec)
        self.layer_names = [spec.name for spec in layers]
        for spec in layers:
            setattr(self, spec.name, SynthesisLayer3(w_dim, spec))

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False) -> torch.Tensor:
        """img [N, img_channels, R, R] float32. noise_mode is accepted and ignored (StyleGAN3 has no noise)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis: ws must be [N, {self.num_ws}, {self.w_dim}]; got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, update_emas=update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def set_input_transform(self, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> None:
        """Move and turn the generated image: rotate by `rotate` degrees (counter-clockwise on
        screen) about its centre, then translate by `translate` = (x, y) in image widths and
        heights (x to the right, y down). The Fourier features are resampled, not the pixels.

        Stores inv(image_transform(translate, rotate)) in input.transform, as NVIDIA's
        gen_images.py does; (0, 0) and 0 restore the identity the networks were trained with.
        """
        m = np.linalg.inv(image_transform(translate, rotate))
        self.input.transform.copy_(torch.from_numpy(m))

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, output_scale={self.output_scale:g}"


def image_transform(translate: tuple[float, float], rotate: float) -> np.ndarray:
    """The user's transform of the output image, float64 [3, 3] (gen_images.py's make_transform):
    [[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]] with a = rotate in degrees."""
    pair = isinstance(translate, (tuple, list)) and len(translate) == 2
    if not (pair and all(_finite_number(v) for v in (*translate, rotate))):
        raise InputError(
            f"input transform: translate must be two finite numbers, rotate one; got {translate!r}, {rotate!r}"
        )
    tx, ty = (float(v) for v in translate)
    a = float(rotate) / 360.0 * math.pi * 2
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]])


def _finite_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
