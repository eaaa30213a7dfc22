"""ADA: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), the 'bgc' pipeline of appendix B written from the paper.

Every image the discriminator sees (real or generated) goes through `AugmentPipe`. Transform k
runs on each image independently with probability p * multiplier_k; its parameters are drawn
from the paper's distributions. Geometric transforms compose into one 3x3 homogeneous matrix per
image and color transforms into one 4x4 matrix, so each family costs a single resampling or a
single matmul however many transforms fired. `stylegen.training.ada.AdaptiveP` moves p so that the overfitting
heuristic r_t = E[sign(D(real))] stays near its target (sec. 3).

Randomness: every draw comes from the `generator` passed to `AugmentPipe.forward` (a
`torch.Generator` on the images' device), or from torch's global generator for that device when
it is None. Draws are made in float32 on that device, in a fixed order, whatever the image dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from stylegen.training.resample import apply_geometry, lowpass_filter

__all__ = ["AUGMENT_PRESETS", "AugmentConfig", "AugmentPipe", "apply_color", "sample_color", "sample_geometry"]

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


@dataclass(frozen=True)
class AugmentConfig:
    """Which transforms run (probability multipliers) and how strong they are (appendix B)."""

    xflip: float = 0.0  # x-flip, i ~ U{0, 1}: half of the firings leave the image as is
    rotate90: float = 0.0  # rotation by k * 90 degrees, k ~ U{0, 1, 2, 3}
    xint: float = 0.0  # integer translation
    scale: float = 0.0  # isotropic scaling
    rotate: float = 0.0  # arbitrary rotation, applied as a pre- and a post-rotation
    aniso: float = 0.0  # anisotropic scaling
    xfrac: float = 0.0  # fractional translation
    brightness: float = 0.0  # additive brightness
    contrast: float = 0.0  # multiplicative contrast
    lumaflip: float = 0.0  # luma flip, i ~ U{0, 1}
    hue: float = 0.0  # hue rotation around the luma axis
    saturation: float = 0.0  # saturation scaling away from the luma axis
    xint_max: float = 0.125  # integer translation ~ U(-max, max) * image size, rounded to pixels
    scale_std: float = 0.2  # scale ~ 2^N(0, std^2) (lognormal)
    rotate_max: float = 1.0  # angle ~ U(-max, max) * pi; 1 = the full circle
    aniso_std: float = 0.2  # x scale s ~ 2^N(0, std^2), y scale 1 / s
    xfrac_std: float = 0.125  # translation ~ N(0, std^2) * image size
    brightness_std: float = 0.2  # offset ~ N(0, std^2), images in [-1, 1]
    contrast_std: float = 0.5  # factor ~ 2^N(0, std^2)
    hue_max: float = 1.0  # angle ~ U(-max, max) * pi
    saturation_std: float = 1.0  # factor ~ 2^N(0, std^2)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"AugmentConfig.{f.name} must be a finite number >= 0; got {v!r}")

    def enabled(self, names: tuple[str, ...]) -> bool:
        return any(getattr(self, n) > 0 for n in names)


def _preset(*groups: tuple[str, ...]) -> AugmentConfig:
    return replace(AugmentConfig(), **{name: 1.0 for g in groups for name in g})


# The paper's transform groups (appendix B): b = pixel blitting, g = general geometric, c = color.
AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "b": _preset(BLIT),
    "g": _preset(GEOM),
    "c": _preset(COLOR),
    "bg": _preset(BLIT, GEOM),
    "bgc": _preset(BLIT, GEOM, COLOR),
}


# --- Batched homogeneous matrices, float64 [N, 3, 3] (2-D) and [N, 4, 4] (color) ----------------


def _mat(rows: list[list], like: torch.Tensor) -> torch.Tensor:
    """Stack a nested list of [N] tensors / numbers into [N, R, C]."""
    rows = [[torch.as_tensor(e, dtype=like.dtype, device=like.device).expand(like.shape) for e in r] for r in rows]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def _translate2d(tx, ty):
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def _scale2d(sx, sy):
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def _rotate2d(cos, sin):
    return _mat([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], cos)


class _Draws:
    """Random per-image parameters for N images: float32 draws on `device`, promoted to float64."""

    def __init__(self, n: int, generator: torch.Generator | None, device):
        self.n, self.generator, self.device = n, generator, device
        self.one, self.zero = (torch.full([n], v, dtype=torch.float64, device=device) for v in (1.0, 0.0))

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand([self.n, *shape], generator=self.generator, device=self.device).double()

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn([self.n, *shape], generator=self.generator, device=self.device).double()

    def fire(self, prob: float, value: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """value where the transform fires (probability `prob` per image), else identity."""
        mask = torch.rand([self.n], generator=self.generator, device=self.device) < min(prob, 1.0)
        return torch.where(mask.view(-1, *[1] * (value.ndim - 1)), value, identity)


def sample_geometry(
    cfg: AugmentConfig, p: float, n: int, h: int, w: int, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Draw N inverse geometric transforms: float64 [N, 3, 3], output pixel -> input pixel.

    Coordinates are pixels with the origin at the image centre (x right, y down), so pixel (i, j)
    of an HxW image sits at (j + 0.5 - W/2, i + 0.5 - H/2). An image no transform changed gets
    the identity bit for bit.
    """
    r = _Draws(n, generator, device)
    g = torch.eye(3, dtype=torch.float64, device=device).repeat(n, 1, 1)
    zero2 = torch.zeros([n, 2], dtype=torch.float64, device=device)
    # Pixel blitting (appendix B): x-flip, rotations by multiples of 90 degrees, integer shifts.
    # The inverse of a chain T_K...T_1 is T_1^-1...T_K^-1: each inverse multiplies on the right.
    if cfg.xflip > 0:
        i = r.fire(p * cfg.xflip, torch.floor(r.uniform() * 2), r.zero)
        g = g @ _scale2d(1 - 2 * i, r.one)
    if cfg.rotate90 > 0:
        k = r.fire(p * cfg.rotate90, torch.floor(r.uniform() * 4), r.zero).long()
        cs = torch.tensor([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float64, device=device)[k]
        g = g @ _rotate2d(cs[:, 0], -cs[:, 1])  # exact cos/sin keep the blit path exact
    if cfg.xint > 0:
        t = r.fire(p * cfg.xint, (r.uniform(2) * 2 - 1) * cfg.xint_max, zero2)
        g = g @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
    # General geometric transforms. A rotation fires as a pre- and a post-rotation, each with
    # probability 1 - sqrt(1 - p), so that "some rotation" has probability p.
    p_rot = 1 - math.sqrt(max(1 - min(p * cfg.rotate, 1.0), 0.0))

    def rotation() -> torch.Tensor:
        theta = r.fire(p_rot, (r.uniform() * 2 - 1) * math.pi * cfg.rotate_max, r.zero)
        return _rotate2d(torch.cos(-theta), torch.sin(-theta))

    if cfg.scale > 0:
        s = r.fire(p * cfg.scale, torch.exp2(r.normal() * cfg.scale_std), r.one)
        g = g @ _scale2d(1 / s, 1 / s)
    if cfg.rotate > 0:
        g = g @ rotation()
    if cfg.aniso > 0:
        s = r.fire(p * cfg.aniso, torch.exp2(r.normal() * cfg.aniso_std), r.one)
        g = g @ _scale2d(1 / s, s)
    if cfg.rotate > 0:
        g = g @ rotation()
    if cfg.xfrac > 0:
        t = r.fire(p * cfg.xfrac, r.normal(2) * cfg.xfrac_std, zero2)
        g = g @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)
    return g


def sample_color(
    cfg: AugmentConfig, p: float, n: int, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Draw N color transforms: float64 [N, 4, 4] acting on homogeneous (r, g, b, 1) pixels.

    An image no transform changed gets the identity bit for bit.
    """
    r = _Draws(n, generator, device)
    eye = torch.eye(4, dtype=torch.float64, device=device)
    c = eye.repeat(n, 1, 1)
    # Luma axis v = (1, 1, 1, 0) / sqrt(3) as in the paper; vv^T projects a color onto gray and
    # rgb - vv^T onto its chroma (the homogeneous coordinate is left alone).
    v = torch.tensor([1, 1, 1, 0], dtype=torch.float64, device=device) / math.sqrt(3)
    vv, rgb = torch.outer(v, v), torch.diag(torch.tensor([1, 1, 1, 0.0], dtype=torch.float64, device=device))
    # Appendix B, color transformations in the paper's order, each multiplying on the left.
    # Identity parameters (offset 0, factor 1, angle 0) give the identity matrix bit for bit.
    if cfg.brightness > 0:
        b = r.fire(p * cfg.brightness, r.normal() * cfg.brightness_std, r.zero)
        c = _mat([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], b) @ c
    if cfg.contrast > 0:
        s = r.fire(p * cfg.contrast, torch.exp2(r.normal() * cfg.contrast_std), r.one)
        c = _mat([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s) @ c
    if cfg.lumaflip > 0:
        i = r.fire(p * cfg.lumaflip, torch.floor(r.uniform() * 2), r.zero)
        c = (eye - 2 * i[:, None, None] * vv) @ c  # Householder reflection of the luma component
    if cfg.hue > 0:
        theta = r.fire(p * cfg.hue, (r.uniform() * 2 - 1) * math.pi * cfg.hue_max, r.zero)
        c = _rotate_about(v, theta, rgb) @ c
    if cfg.saturation > 0:
        s = r.fire(p * cfg.saturation, torch.exp2(r.normal() * cfg.saturation_std), r.one)
        c = (eye + (s - 1)[:, None, None] * (rgb - vv)) @ c  # chroma * s
    return c


def _rotate_about(v: torch.Tensor, theta: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Rotation of (r, g, b) by theta [N] about the unit axis v[:3] (Rodrigues) as [N, 4, 4]."""
    x, y, z = (float(e) for e in v[:3])
    k = v.new_tensor([[0, -z, y, 0], [z, 0, -x, 0], [-y, x, 0, 0], [0, 0, 0, 0]])  # k @ u = v x u
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    # I + (cos - 1) I_rgb + sin K + (1 - cos) vv^T: every correction is exactly 0 when theta = 0.
    return torch.eye(4, dtype=v.dtype, device=v.device) + (cos - 1) * rgb + sin * k + (1 - cos) * torch.outer(v, v)


# --- Applying the color matrix (the geometric one: stylegen.training.resample) -----------------------------


def apply_color(images: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Images [N, C, H, W] (C = 3 RGB, or C = 1 luma) through color matrices c [N, 4, 4].

    A 1-channel image is taken as the gray color (y, y, y): it goes through the matrix and comes
    back as the mean of the three channels. Gray lies on the luma axis, so hue and saturation
    leave it unchanged and a luma flip negates it. Identity rows are passed through bit for bit.
    """
    ch = images.shape[1]
    active = (c != torch.eye(4, dtype=c.dtype, device=c.device)).flatten(1).any(1)
    if not bool(active.any()):
        return images
    if ch not in (1, 3):
        raise ValueError(f"color augmentation needs 1 or 3 channels; got images of shape {tuple(images.shape)}")
    idx = active.nonzero()[:, 0]
    x, m = images.index_select(0, idx), c.index_select(0, idx)
    if ch == 3:
        m = m.to(images.dtype)
        y = (m[:, :3, :3] @ x.flatten(2) + m[:, :3, 3:]).view_as(x)
    else:
        gain, bias = m[:, :3, :3].sum(2).mean(1), m[:, :3, 3].mean(1)  # [n] each, float64
        y = x * gain.to(x.dtype).view(-1, 1, 1, 1) + bias.to(x.dtype).view(-1, 1, 1, 1)
    return images.index_copy(0, idx, y)


# --- The pipeline ---------------------------------------------------------------------------------


class AugmentPipe(torch.nn.Module):
    """The ADA augmentation pipeline: images [N, C, H, W] -> [N, C, H, W], differentiable.

    Geometric transforms first (one 3x3 matrix per image, one resampling), then color (one 4x4
    matrix per image, one matmul). `p` is a scalar buffer: set it with `pipe.p.fill_(value)`,
    or let `stylegen.training.ada.AdaptiveP` drive it. With p = 0 the input tensor itself is returned. 1-channel
    images are gray: hue and saturation leave them as they are, a luma flip negates them.
    """

    def __init__(
        self,
        config: AugmentConfig = AUGMENT_PRESETS["bgc"],  # which transforms, how strong
        p: float = 0.0,  # initial probability multiplier of every transform
        filter_taps: int = 12,  # length of the 2x low-pass filter of the resampling
        impl: str = "auto",  # stylegen.ops implementation for upfirdn2d: auto | ref | cpu | cuda
    ):
        super().__init__()
        self.config = config
        self.impl = impl
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("lowpass", lowpass_filter(filter_taps), persistent=False)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """images: float [N, C, H, W] in ~[-1, 1] (C = 1 or 3 when color transforms are on).

        generator: a torch.Generator on images.device; None = torch's global generator.
        """
        if images.ndim != 4 or not images.is_floating_point():
            got = f"{images.dtype} {tuple(images.shape)}"
            raise ValueError(f"AugmentPipe: images must be a float [N, C, H, W] tensor; got {got}")
        if self.config.enabled(COLOR) and images.shape[1] not in (1, 3):
            raise ValueError(
                f"AugmentPipe: color transforms need 1 or 3 channels; got images of shape {tuple(images.shape)} "
                "(use a preset without color, e.g. 'bg')"
            )
        p = float(self.p)
        if not 0 <= p <= 1:
            raise ValueError(f"AugmentPipe: p must be in [0, 1]; got {p}")
        if p == 0:
            return images
        n, _, h, w = images.shape
        g_inv = sample_geometry(self.config, p, n, h, w, generator, images.device)
        c = sample_color(self.config, p, n, generator, images.device)
        return apply_color(apply_geometry(images, g_inv, self.lowpass, self.impl), c)

    def extra_repr(self) -> str:
        on = [f.name for f in fields(self.config) if f.name in BLIT + GEOM + COLOR and getattr(self.config, f.name)]
        return f"p={float(self.p):.4f}, transforms=[{', '.join(on)}], filter_taps={self.lowpass.numel()}"
