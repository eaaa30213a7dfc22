"""Residual discriminator of StyleGAN2 (Karras et al. 2020, fig. 7b) with minibatch std-dev.

Parameter names are NVIDIA's (docs/formats.md), so their published `D` loads for
fine-tuning. Conditional networks project the label embedding onto the output
(Miyato & Koyama 2018), as NVIDIA's does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from stylegen.networks.layers import FullyConnectedLayer, normalize_2nd_moment
from stylegen.ops import ACTIVATIONS, bias_act, setup_filter, upfirdn2d


@dataclass(frozen=True)
class DiscriminatorConfig:
    c_dim: int  # label size (0 = unconditional)
    img_resolution: int  # input resolution, a power of two >= 4
    img_channels: int  # input channels
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    conv_clamp: float | None = None  # clamp conv outputs to +-conv_clamp
    mbstd_group_size: int = 4  # minibatch std-dev group (clipped to the batch)
    mbstd_num_channels: int = 1  # minibatch std-dev feature maps
    mapping_layers: int = 8  # label mapping layers (conditional only)
    resample_filter: tuple = (1, 3, 3, 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resample_filter"] = list(self.resample_filter)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DiscriminatorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown discriminator config keys: {', '.join(unknown)}")
        d = dict(d)
        if "resample_filter" in d:
            d["resample_filter"] = tuple(d["resample_filter"])
        return cls(**d)

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


class Conv2dLayer(torch.nn.Module):
    """Equalized-lr conv, optional FIR-filtered 2x downsampling, fused bias + activation."""

    def __init__(
        self,
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        kernel_size: int,  # 1 or 3
        bias: bool = True,  # learn a bias
        activation: str = "linear",  # activation of bias_act
        down: int = 1,  # 1 or 2
        resample_filter=(1, 3, 3, 1),  # FIR low-pass used when downsampling
        conv_clamp: float | None = None,  # clamp the output to +-conv_clamp
        trainable: bool = True,  # False = frozen (weights stored as buffers, like NVIDIA's)
    ):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_t)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        kw = w.shape[-1]
        if self.down == 2:
            # NVIDIA's conv2d_resample(down=2): filter with padding, then a strided conv
            # (a 1x1 conv is cheaper after the downsampling).
            fw = self.resample_filter.shape[-1]
            p0 = self.padding + (fw - 1) // 2
            p1 = self.padding + (fw - 2) // 2
            if kw == 1:
                x = upfirdn2d(x, self.resample_filter, down=2, padding=[p0, p1, p0, p1])
                x = F.conv2d(x, w)
            else:
                x = upfirdn2d(x, self.resample_filter, padding=[p0, p1, p0, p1])
                x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class DiscriminatorBlock(torch.nn.Module):
    """fromrgb (first block only), conv0, conv1 (down 2), plus a 1x1 residual skip (down 2)."""

    def __init__(self, in_channels, tmp_channels, out_channels, img_channels, first_layer_idx, cfg, freeze_layers=0):
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("resample_filter", setup_filter(cfg.resample_filter))  # unused; NVIDIA has it
        idx = iter(range(first_layer_idx, first_layer_idx + 4))
        common = dict(resample_filter=cfg.resample_filter)
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(
                img_channels,
                tmp_channels,
                1,
                activation="lrelu",
                conv_clamp=cfg.conv_clamp,
                trainable=next(idx) >= freeze_layers,
            )
        self.conv0 = Conv2dLayer(
            tmp_channels,
            tmp_channels,
            3,
            activation="lrelu",
            conv_clamp=cfg.conv_clamp,
            trainable=next(idx) >= freeze_layers,
        )
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            3,
            activation="lrelu",
            down=2,
            conv_clamp=cfg.conv_clamp,
            trainable=next(idx) >= freeze_layers,
            **common,
        )
        self.skip = Conv2dLayer(
            tmp_channels, out_channels, 1, bias=False, down=2, trainable=next(idx) >= freeze_layers, **common
        )
        self.num_layers = 4 if in_channels == 0 else 3

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y.add_(x)


def minibatch_std(x: torch.Tensor, group_size: int, num_channels: int) -> torch.Tensor:
    """Append the group std-dev of the features as extra channels (Karras et al. 2018, sec. 3)."""
    n, c, h, w = x.shape
    g = min(group_size, n) if group_size else n
    if n % g:
        raise ValueError(f"minibatch std: batch {n} is not a multiple of the group size {g}")
    f = num_channels
    y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]: member i of group j is x[i*n + j]
    y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over the group
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n, F]
    y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
    return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4 head: minibatch std, conv, fc, output (projected onto the label embedding if any)."""

    def __init__(self, in_channels: int, cmap_dim: int, cfg: DiscriminatorConfig):
        super().__init__()
        self.cmap_dim, self.cfg = cmap_dim, cfg
        self.conv = Conv2dLayer(
            in_channels + cfg.mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=cfg.conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.cfg.mbstd_num_channels > 0:
            x = minibatch_std(x, self.cfg.mbstd_group_size, self.cfg.mbstd_num_channels)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class LabelMapping(torch.nn.Module):
    """c -> cmap: NVIDIA's MappingNetwork with z_dim=0 and no w_avg (names embed, fc{i})."""

    def __init__(self, c_dim: int, cmap_dim: int, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        self.embed = FullyConnectedLayer(c_dim, cmap_dim)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(cmap_dim, cmap_dim, activation="lrelu", lr_multiplier=0.01))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        x = normalize_2nd_moment(self.embed(c.to(torch.float32)))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class Discriminator(torch.nn.Module):
    """img [N, C, R, R] (+ c [N, c_dim]) -> logits [N, 1]."""

    def __init__(self, config: DiscriminatorConfig, freeze_layers: int = 0):
        super().__init__()
        res = config.img_resolution
        if res < 8 or res & (res - 1):
            raise ValueError(f"discriminator: img_resolution must be a power of two >= 8; got {res}")
        self.config = config
        self.c_dim, self.img_resolution, self.img_channels = config.c_dim, res, config.img_channels
        self.block_resolutions = [2**i for i in range(int(math.log2(res)), 2, -1)]
        layer_idx = 0
        for r in self.block_resolutions:
            in_ch = config.channels(r) if r < res else 0
            block = DiscriminatorBlock(
                in_ch,
                config.channels(r),
                config.channels(r // 2),
                config.img_channels,
                layer_idx,
                config,
                freeze_layers,
            )
            setattr(self, f"b{r}", block)
            layer_idx += block.num_layers
        cmap_dim = config.channels(4) if config.c_dim > 0 else 0
        if config.c_dim > 0:
            self.mapping = LabelMapping(config.c_dim, cmap_dim, config.mapping_layers)
        self.b4 = DiscriminatorEpilogue(config.channels(4), cmap_dim, config)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(
                f"discriminator: expected images [N, {self.img_channels}, {self.img_resolution}, "
                f"{self.img_resolution}]; got {tuple(img.shape)}"
            )
        x = None
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x, img)
        cmap = None
        if self.c_dim > 0:
            if c is None or c.shape != (img.shape[0], self.c_dim):
                raise ValueError(f"discriminator: conditional network needs c [N, {self.c_dim}]")
            cmap = self.mapping(c)
        return self.b4(x, cmap)
