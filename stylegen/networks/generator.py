"""Generator = mapping network + synthesis network (StyleGAN2: skip, orig or resnet architecture)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from stylegen.networks.mapping import MappingNetwork
from stylegen.networks.synthesis import ARCHITECTURES, SynthesisNetwork


@dataclass(frozen=True)
class GeneratorConfig:
    """Hyper-parameters of a Generator; `to_dict()` is what snapshots store."""

    z_dim: int  # input latent size
    c_dim: int  # conditioning label size, 0 = unconditional
    w_dim: int  # intermediate latent size
    img_resolution: int  # output resolution, a power of two >= 4
    img_channels: int  # output image channels
    mapping_layers: int = 8  # fully connected layers of the mapping network
    mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping layers
    w_avg_beta: float = 0.995  # decay of the tracked average w
    channel_base: int = 32768  # feature maps at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512  # maximum feature maps
    conv_clamp: float | None = None  # clamp conv outputs to +-conv_clamp (None = off)
    architecture: str = "skip"  # 'skip', 'orig' or 'resnet' (stylegen.networks.synthesis)
    resample_filter: tuple = (1, 3, 3, 1)  # 1-D FIR taps of the up-sampling filter

    def __post_init__(self):
        object.__setattr__(self, "resample_filter", tuple(self.resample_filter))
        r = self.img_resolution
        if not isinstance(r, int) or r < 4 or r & (r - 1):
            raise ValueError(f"GeneratorConfig: img_resolution must be a power of two >= 4; got {r!r}")
        for name in ("c_dim", "z_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"GeneratorConfig: {name} must be >= 0; got {getattr(self, name)}")
        if self.z_dim == 0 and self.c_dim == 0:
            raise ValueError("GeneratorConfig: z_dim and c_dim cannot both be 0")
        for name in ("w_dim", "img_channels", "mapping_layers", "channel_base", "channel_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"GeneratorConfig: {name} must be >= 1; got {getattr(self, name)}")
        if self.channel_base // r < 1:
            raise ValueError(f"GeneratorConfig: channel_base {self.channel_base} gives 0 channels at {r}x{r}")
        if self.architecture not in ARCHITECTURES:
            known = ", ".join(ARCHITECTURES)
            raise ValueError(f"GeneratorConfig: architecture {self.architecture!r} is not supported (one of {known})")

    def to_dict(self) -> dict:
        """JSON-able dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["resample_filter"] = list(self.resample_filter)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        """Inverse of to_dict; unknown keys are an error (a newer or foreign snapshot)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"GeneratorConfig: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**d)

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.img_resolution)) - 2


def ws_resolution(i: int) -> int:
    """Conv resolution of ws index i (ws[0], ws[1] -> 4; ws[2..4] -> 8; ...)."""
    return 2 ** ((i + 5) // 2)


class MappedGenerator(torch.nn.Module):
    """G(z) = synthesis(mapping(z)): the call shared by every generator (StyleGAN2, its frozen
    inference form, StyleGAN3). Subclasses set .mapping, .synthesis and the size attributes."""

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        """img [N, img_channels, R, R] float32; see MappingNetwork and the synthesis network
        (StyleGAN3 accepts noise_mode and ignores it: it has no noise). w_avg is only tracked in
        training mode."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_w_avg=update_w_avg)
        return self.synthesis(ws, noise_mode=noise_mode)


class Generator(MappedGenerator):
    """z [N, z_dim] (+ c [N, c_dim]) -> img [N, img_channels, R, R] in ~[-1, 1]."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=config.w_dim,
            img_resolution=config.img_resolution,
            img_channels=config.img_channels,
            channel_base=config.channel_base,
            channel_max=config.channel_max,
            conv_clamp=config.conv_clamp,
            resample_filter=config.resample_filter,
            architecture=config.architecture,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork.from_config(config, self.num_ws)

    def freeze(self, fold_up2: str = "auto") -> torch.nn.Module:
        """The inference form of this generator, built once from a copy of its current weights.

        Same call signature and pixels, much faster on a CPU; see `stylegen.networks.inference`.
        Editing this Generator later does not change the frozen form: freeze again.
        """
        from stylegen.networks.inference import freeze

        return freeze(self, fold_up2)

    def extra_repr(self) -> str:
        return f"config={self.config}"


def seed_to_z(seed: int, z_dim: int) -> torch.Tensor:
    """NVIDIA's convention: RandomState(seed).randn(1, z_dim) in float64, as float32 [1, z_dim]."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).to(torch.float32)


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """img [N, C, H, W] in ~[-1, 1] -> uint8 [N, H, W, C]: (x * 127.5 + 128) clamped, truncated."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
