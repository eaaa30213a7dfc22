"""StyleGAN3 generator = StyleGAN2's mapping network (other defaults) + the alias-free synthesis network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from stylegen.networks.generator import MappedGenerator
from stylegen.networks.mapping import MappingNetwork
from stylegen.networks.sg3_synthesis import InputSpec, LayerSpec, SynthesisNetwork3


@dataclass(frozen=True)
class Generator3Config:
    """A StyleGAN3 generator: read from a pickle's kwargs and records, or laid out by sg3_design.design_config3."""

    z_dim: int  # input latent size
    c_dim: int  # conditioning label size, 0 = unconditional
    w_dim: int  # intermediate latent size
    img_resolution: int  # output resolution
    img_channels: int  # output image channels
    input: InputSpec  # the Fourier-feature input
    layers: tuple[LayerSpec, ...]  # the synthesis layers in execution order, the RGB layer last
    mapping_layers: int = 2  # fully connected layers of the mapping network
    mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping layers
    w_avg_beta: float = 0.998  # decay of the tracked average w
    output_scale: float = 0.25  # the RGB layer's output is multiplied by this
    channel_base: int = 32768  # informational: it chose the layers' channels
    channel_max: int = 512  # informational

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        for name in ("z_dim", "c_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"Generator3Config: {name} must be >= 0; got {getattr(self, name)}")
        if self.z_dim == 0 and self.c_dim == 0:
            raise ValueError("Generator3Config: z_dim and c_dim cannot both be 0")
        for name in ("w_dim", "img_resolution", "img_channels", "mapping_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"Generator3Config: {name} must be >= 1; got {getattr(self, name)}")
        self._check_layers()

    def _check_layers(self) -> None:
        """ValueError unless each layer reads what the one before it writes, ending in the image."""
        if not self.layers or not self.layers[-1].is_torgb or any(s.is_torgb for s in self.layers[:-1]):
            raise ValueError("Generator3Config: the layers must end in exactly one RGB layer")
        names = [s.name for s in self.layers]
        if len(set(names)) != len(names) or not all(n.isidentifier() and not n.startswith("_") for n in names):
            raise ValueError(f"Generator3Config: layer names must be distinct identifiers; got {names}")
        inp = self.input
        if inp.channels < 1 or min(inp.size) < 1 or inp.sampling_rate <= 0:
            raise ValueError(f"Generator3Config: bad input spec {inp}")
        prev = (inp.channels, tuple(inp.size), float(inp.sampling_rate))
        for spec in self.layers:
            spec.check()
            if (spec.in_channels, tuple(spec.in_size), float(spec.in_sampling_rate)) != prev:
                raise ValueError(
                    f"Generator3Config: layer {spec.name} reads (channels, size, rate) "
                    f"{(spec.in_channels, tuple(spec.in_size), spec.in_sampling_rate)}, the layer before writes {prev}"
                )
            prev = (spec.out_channels, tuple(spec.out_size), float(spec.out_sampling_rate))
        want = (self.img_channels, (self.img_resolution,) * 2)
        if prev[:2] != want:
            raise ValueError(f"Generator3Config: the RGB layer writes {prev[:2]}, the image is {want}")

    @property
    def num_ws(self) -> int:
        """num_layers + 2: one for the input, one per layer (the RGB layer included)."""
        return len(self.layers) + 1

    @property
    def conv_clamp(self) -> float | None:
        return self.layers[0].conv_clamp

    @property
    def architecture(self) -> str:
        """'stylegan3-r' (1x1 kernels, radial filters) or 'stylegan3-t'."""
        radial = any(s.down_radial for s in self.layers) or self.layers[0].conv_kernel == 1
        return "stylegan3-r" if radial else "stylegan3-t"

    def to_dict(self) -> dict:
        """Plain dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Generator3Config:
        """Inverse of to_dict; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Generator3Config: unknown keys {', '.join(unknown)}")
        d = dict(d)
        d["input"] = InputSpec(**{**d["input"], "size": tuple(d["input"]["size"])})
        d["layers"] = tuple(_layer_spec(s) for s in d["layers"])
        return cls(**d)


def _layer_spec(d: dict) -> LayerSpec:
    tuples = ("in_size", "out_size", "padding")
    return LayerSpec(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


class Generator3(MappedGenerator):
    """z [N, z_dim] (+ c [N, c_dim]) -> img [N, img_channels, R, R] in ~[-1, 1] (StyleGAN3)."""

    def __init__(self, config: Generator3Config):
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.synthesis = SynthesisNetwork3(config.w_dim, config.input, config.layers, config.output_scale)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork.from_config(config, self.num_ws)

    def freeze(self) -> Generator3:
        """The inference form, built once from a copy of the current weights (stylegen.networks.sg3_inference).

        Same call signature and pixels (to float32 rounding); editing this generator later does
        not change the frozen form: freeze again.
        """
        from stylegen.networks.sg3_inference import freeze3

        return freeze3(self)

    def extra_repr(self) -> str:
        c = self.config
        return f"architecture={c.architecture}, z_dim={c.z_dim}, c_dim={c.c_dim}, w_dim={c.w_dim}, num_ws={c.num_ws}"


def is_stylegan3(G: torch.nn.Module) -> bool:
    """True for a StyleGAN3 generator (mix, project and training take their StyleGAN3 paths on it)."""
    return isinstance(G, Generator3)
