"""rosinality/stylegan2-pytorch state dicts <-> ours: architecture from shapes, names, transforms.

Everything here follows the tables of docs/formats.md ("rosinality/stylegan2-pytorch
checkpoints"): the architecture (size, style_dim, n_mlp, the channel table, the blur filter) is
read from the tensor shapes, never from `args`; each tensor has one counterpart in our
Generator / Discriminator and one of a few exact, invertible transforms (drop or add leading
unit dimensions; the generator's up-sampling kernels are stored multiplied by factor**2 = 4).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from stylegen.formats.state_check import shape_mismatches
from stylegen.ops import setup_filter

# rosinality's channel table: 512 up to 32x32, then these times channel_multiplier.
_ROSINALITY_BASE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
_UP_GAIN = 4  # the generator's blur kernels are make_kernel(k) * factor**2 (factor 2)

# Transforms from a rosinality tensor to ours; each has an exact inverse (see _INVERSE).
SAME, FIRST, SCALAR, VECTOR, NOISE, UP_FILTER = "same", "first", "scalar", "vector", "noise", "up_filter"
_FORWARD = {
    SAME: lambda t: t,
    FIRST: lambda t: t[0],  # [1, ...] -> [...]
    SCALAR: lambda t: t.reshape(()),  # [1] -> []
    VECTOR: lambda t: t.reshape(-1),  # [1, C, 1, 1] -> [C]
    NOISE: lambda t: t[0, 0],  # [1, 1, r, r] -> [r, r]
    UP_FILTER: lambda t: t / _UP_GAIN,  # stored * 4 -> normalized
}
_INVERSE = {
    SAME: lambda t: t,
    FIRST: lambda t: t.unsqueeze(0),
    SCALAR: lambda t: t.reshape(1),
    VECTOR: lambda t: t.reshape(1, -1, 1, 1),
    NOISE: lambda t: t.reshape(1, 1, *t.shape),
    UP_FILTER: lambda t: t * _UP_GAIN,
}

Pair = tuple  # (rosinality name, our name, transform, rosinality shape)


def rosinality_channels(size: int, channel_multiplier: int) -> dict[int, int]:
    """rosinality's own channel table for resolutions 4 .. size."""
    return {r: c * (channel_multiplier if r >= 64 else 1) for r, c in _ROSINALITY_BASE.items() if r <= size}


def channel_multiplier_of(channels: dict[int, int]) -> int | None:
    """The channel_multiplier whose rosinality table is `channels`: 0 when any multiplier gives
    it (512 throughout, sizes <= 32), None when none does (a narrowed or widened table)."""
    size = max(channels)
    if size > 1024:
        return None
    if size <= 32:
        return 0 if channels == rosinality_channels(size, 1) else None
    cm, rest = divmod(channels[64], 256)
    return cm if cm >= 1 and not rest and channels == rosinality_channels(size, cm) else None


def base_and_max(channels: dict[int, int], prefer: tuple[int, ...] = (32768, 16384)) -> tuple[int, int] | None:
    """(channel_base, channel_max) with min(channel_base // r, channel_max) == channels[r] for every
    r, preferring the values in `prefer`; None when no pair fits (e.g. channel_multiplier >= 3)."""
    cmax = max(channels.values())
    lo, hi = 1, math.inf
    for r, c in channels.items():
        if c == cmax:
            lo = max(lo, cmax * r)  # channel_base // r >= channel_max
        else:
            lo, hi = max(lo, c * r), min(hi, c * r + r - 1)  # channel_base // r == c
    if lo > hi:
        return None
    return next((p for p in prefer if lo <= p <= hi), lo), cmax


def describe_channels(channels: dict[int, int]) -> str:
    return "/".join(str(channels[r]) for r in sorted(channels))


def filter_taps(f: torch.Tensor, what: str) -> tuple:
    """The 1-D taps (integers when they are) of a normalized separable 2-D filter."""
    if f.ndim != 2 or f.shape[0] != f.shape[1] or f.shape[0] < 1:
        raise ValueError(f"{what} has shape {tuple(f.shape)}, not a square 2-D filter")
    t = f.double().sum(dim=1)
    if not bool((t > 0).all()):
        raise ValueError(f"{what} is not a low-pass blur kernel")
    t = t / t.min()
    rounded = t.round()
    taps = tuple(int(v) for v in rounded) if float((t - rounded).abs().max()) < 1e-4 else tuple(map(float, t))
    check_filter(f, taps, what)
    return taps


def check_filter(f: torch.Tensor, taps: tuple, what: str) -> None:
    """ValueError unless f is (within float rounding) the normalized outer product of taps."""
    ref = setup_filter(list(taps))
    if f.shape != ref.shape or float((f.double() - ref.double()).abs().max()) > 1e-6 * float(ref.abs().max()):
        raise ValueError(f"{what} is not the separable blur filter {list(taps)} the other layers use")


def _count(state: dict, pattern: str) -> list[int]:
    """The sorted integers i of the keys matching pattern (with one (\\d+) group)."""
    rx = re.compile(pattern)
    return sorted(int(m.group(1)) for k in state if (m := rx.fullmatch(k)))


def _shape(state: dict, key: str, dim: int, what: str) -> int:
    t = state.get(key)
    if not isinstance(t, torch.Tensor) or t.ndim <= dim:
        raise ValueError(f"no {what} tensor '{key}'")
    return int(t.shape[dim])


def _check_contiguous(ids: list[int], first: int, what: str) -> int:
    if not ids or ids != list(range(first, first + len(ids))):
        raise ValueError(f"{what} are missing or not numbered {first}, {first + 1}, ...")
    return len(ids)


def check_shapes(state: dict, pairs: list[Pair], what: str) -> None:
    """ValueError naming the first missing, unexpected or misshapen tensors of a state dict."""
    problems = shape_mismatches(state, {ros: shape for ros, _, _, shape in pairs})
    if problems:
        raise ValueError(f"{what} does not have rosinality's StyleGAN2 layout: {problems}")


def to_ours(state: dict, pairs: list[Pair]) -> dict[str, torch.Tensor]:
    """Our names -> float32 tensors, from a rosinality state dict already checked by check_shapes."""
    return {ours: _FORWARD[kind](state[ros]).to(torch.float32) for ros, ours, kind, _ in pairs}


def from_ours(state: dict, pairs: list[Pair]) -> dict[str, torch.Tensor]:
    """rosinality names -> tensors (contiguous copies, on the CPU), from our state dict."""
    return {ros: _INVERSE[kind](state[ours].detach()).cpu().contiguous().clone() for ros, ours, kind, _ in pairs}


# ---------------------------------------------------------------------------------------------
# Generator


@dataclass(frozen=True)
class GeneratorArch:
    """A rosinality Generator's architecture, as its tensors show it."""

    size: int  # output resolution
    style_dim: int  # z_dim = w_dim
    n_mlp: int  # mapping layers
    img_channels: int  # 3 in rosinality's code
    channels: dict  # resolution -> feature maps
    resample_filter: tuple  # 1-D taps of the blur kernels

    @property
    def n_latent(self) -> int:
        return 2 * int(math.log2(self.size)) - 2


def is_swagan(state: dict) -> bool:
    """Whether a generator / discriminator state dict is rosinality's SWAGAN (wavelet) variant."""
    rgb = state.get("to_rgb1.conv.weight")
    wavelet = any(re.search(r"(^|\.)(iwt|dwt)\.", k) for k in state)
    return wavelet or (isinstance(rgb, torch.Tensor) and rgb.ndim == 5 and rgb.shape[1] == 12)


def infer_generator(state: dict, what: str = "g_ema") -> GeneratorArch:
    """The architecture of a rosinality generator state dict; ValueError when it is not one."""
    n_mlp = _check_contiguous(_count(state, r"style\.(\d+)\.weight"), 1, "mapping weights style.{i}.weight")
    n_up = len(_count(state, r"to_rgbs\.(\d+)\.conv\.weight"))
    if not any(k.startswith("noises.") for k in state):
        raise ValueError(
            "no noises.noise_{i} buffers (a rosinality checkpoint from before 2020-01-15): its constant noise is not in the file"
        )
    size = 4 * 2**n_up
    channels = {4: _shape(state, "input.input", 1, "constant input")}
    for k in range(n_up):
        channels[2 ** (k + 3)] = _shape(state, f"convs.{2 * k}.conv.weight", 1, "up-sampling conv")
    taps = (1, 3, 3, 1)
    if n_up:
        kernel = state.get("convs.0.conv.blur.kernel")
        if not isinstance(kernel, torch.Tensor):
            raise ValueError("no blur kernel 'convs.0.conv.blur.kernel'")
        taps = filter_taps(kernel / _UP_GAIN, "convs.0.conv.blur.kernel / 4")
    arch = GeneratorArch(
        size=size,
        style_dim=_shape(state, "style.1.weight", 1, "mapping"),
        n_mlp=n_mlp,
        img_channels=_shape(state, "to_rgb1.conv.weight", 1, "to-RGB"),
        channels=channels,
        resample_filter=taps,
    )
    pairs = generator_pairs(arch)
    check_shapes(state, pairs, what)
    for ros, _, kind, _ in pairs:
        if kind == UP_FILTER:
            check_filter(state[ros] / _UP_GAIN, taps, f"{ros} / 4")
    return arch


def _styled(ros: str, ours: str, cin: int, cout: int, d: int, up_filter: int = 0) -> list[Pair]:
    """A StyledConv: modulated 3x3 conv (+ up-sampling blur), noise weight, fused bias."""
    pairs = [(f"{ros}.conv.weight", f"{ours}.weight", FIRST, (1, cout, cin, 3, 3))]
    if up_filter:
        pairs.append((f"{ros}.conv.blur.kernel", f"{ours}.resample_filter", UP_FILTER, (up_filter, up_filter)))
    return pairs + [
        (f"{ros}.conv.modulation.weight", f"{ours}.affine.weight", SAME, (cin, d)),
        (f"{ros}.conv.modulation.bias", f"{ours}.affine.bias", SAME, (cin,)),
        (f"{ros}.noise.weight", f"{ours}.noise_strength", SCALAR, (1,)),
        (f"{ros}.activate.bias", f"{ours}.bias", SAME, (cout,)),
    ]


def _to_rgb(ros: str, ours: str, cin: int, img: int, d: int) -> list[Pair]:
    return [
        (f"{ros}.conv.weight", f"{ours}.weight", FIRST, (1, img, cin, 1, 1)),
        (f"{ros}.conv.modulation.weight", f"{ours}.affine.weight", SAME, (cin, d)),
        (f"{ros}.conv.modulation.bias", f"{ours}.affine.bias", SAME, (cin,)),
        (f"{ros}.bias", f"{ours}.bias", VECTOR, (1, img, 1, 1)),
    ]


def generator_pairs(a: GeneratorArch) -> list[Pair]:
    """Every tensor of a rosinality Generator with its counterpart in ours (docs/formats.md).

    Our `mapping.w_avg` (rosinality's separate `latent_avg`) and the `resample_filter` buffers
    of b4 and of each conv1 (no rosinality counterpart, same filter) are not in the list.
    """
    d, c, img, ft = a.style_dim, a.channels, a.img_channels, len(a.resample_filter)
    pairs: list[Pair] = []
    for i in range(1, a.n_mlp + 1):
        pairs += [
            (f"style.{i}.weight", f"mapping.fc{i - 1}.weight", SAME, (d, d)),
            (f"style.{i}.bias", f"mapping.fc{i - 1}.bias", SAME, (d,)),
        ]
    pairs.append(("input.input", "synthesis.b4.const", FIRST, (1, c[4], 4, 4)))
    pairs += _styled("conv1", "synthesis.b4.conv1", c[4], c[4], d)
    pairs.append(("noises.noise_0", "synthesis.b4.conv1.noise_const", NOISE, (1, 1, 4, 4)))
    pairs += _to_rgb("to_rgb1", "synthesis.b4.torgb", c[4], img, d)
    for k in range(int(math.log2(a.size)) - 2):
        r = 2 ** (k + 3)
        b = f"synthesis.b{r}"
        pairs += _styled(f"convs.{2 * k}", f"{b}.conv0", c[r // 2], c[r], d, up_filter=ft)
        pairs.append((f"noises.noise_{2 * k + 1}", f"{b}.conv0.noise_const", NOISE, (1, 1, r, r)))
        pairs += _styled(f"convs.{2 * k + 1}", f"{b}.conv1", c[r], c[r], d)
        pairs.append((f"noises.noise_{2 * k + 2}", f"{b}.conv1.noise_const", NOISE, (1, 1, r, r)))
        pairs += _to_rgb(f"to_rgbs.{k}", f"{b}.torgb", c[r], img, d)
        pairs.append((f"to_rgbs.{k}.upsample.kernel", f"{b}.resample_filter", UP_FILTER, (ft, ft)))
    return pairs


# ---------------------------------------------------------------------------------------------
# Discriminator


@dataclass(frozen=True)
class DiscriminatorArch:
    """A rosinality Discriminator's architecture, as its tensors show it."""

    size: int  # input resolution
    img_channels: int
    channels: dict  # resolution -> feature maps
    resample_filter: tuple


def infer_discriminator(state: dict) -> DiscriminatorArch:
    """The architecture of a rosinality discriminator state dict; ValueError when it is not one."""
    blocks = _check_contiguous(_count(state, r"convs\.(\d+)\.conv1\.0\.weight"), 1, "residual blocks convs.{n}")
    size = 4 * 2**blocks
    channels = {size: _shape(state, "convs.0.0.weight", 0, "from-RGB")}
    for n in range(1, blocks + 1):
        channels[size >> n] = _shape(state, f"convs.{n}.conv2.1.weight", 0, "down-sampling conv")
    kernel = state.get("convs.1.conv2.0.kernel")
    if not isinstance(kernel, torch.Tensor):
        raise ValueError("no blur kernel 'convs.1.conv2.0.kernel'")
    taps = filter_taps(kernel, "convs.1.conv2.0.kernel")
    arch = DiscriminatorArch(size, _shape(state, "convs.0.0.weight", 1, "from-RGB"), channels, taps)
    pairs = discriminator_pairs(arch)
    check_shapes(state, pairs, "d")
    for ros, *_ in pairs:
        if ros.endswith(".kernel"):
            check_filter(state[ros], taps, ros)
    return arch


def discriminator_pairs(a: DiscriminatorArch) -> list[Pair]:
    """Every tensor of a rosinality Discriminator with its counterpart in ours (docs/formats.md).

    Ours also has `resample_filter` buffers on every block, fromrgb, conv0 and b4.conv (unused
    or the same filter): not in the list.
    """
    c, ft, top = a.channels, len(a.resample_filter), f"b{a.size}"
    pairs: list[Pair] = [
        ("convs.0.0.weight", f"{top}.fromrgb.weight", SAME, (c[a.size], a.img_channels, 1, 1)),
        ("convs.0.1.bias", f"{top}.fromrgb.bias", SAME, (c[a.size],)),
    ]
    for n in range(1, int(math.log2(a.size)) - 1):
        r = a.size >> (n - 1)
        ros, b, cin, cout = f"convs.{n}", f"b{r}", c[r], c[r // 2]
        pairs += [
            (f"{ros}.conv1.0.weight", f"{b}.conv0.weight", SAME, (cin, cin, 3, 3)),
            (f"{ros}.conv1.1.bias", f"{b}.conv0.bias", SAME, (cin,)),
            (f"{ros}.conv2.0.kernel", f"{b}.conv1.resample_filter", SAME, (ft, ft)),
            (f"{ros}.conv2.1.weight", f"{b}.conv1.weight", SAME, (cout, cin, 3, 3)),
            (f"{ros}.conv2.2.bias", f"{b}.conv1.bias", SAME, (cout,)),
            (f"{ros}.skip.0.kernel", f"{b}.skip.resample_filter", SAME, (ft, ft)),
            (f"{ros}.skip.1.weight", f"{b}.skip.weight", SAME, (cout, cin, 1, 1)),
        ]
    c4 = c[4]
    return pairs + [
        ("final_conv.0.weight", "b4.conv.weight", SAME, (c4, c4 + 1, 3, 3)),
        ("final_conv.1.bias", "b4.conv.bias", SAME, (c4,)),
        ("final_linear.0.weight", "b4.fc.weight", SAME, (c4, c4 * 16)),
        ("final_linear.0.bias", "b4.fc.bias", SAME, (c4,)),
        ("final_linear.1.weight", "b4.out.weight", SAME, (1, c4)),
        ("final_linear.1.bias", "b4.out.bias", SAME, (1,)),
    ]
