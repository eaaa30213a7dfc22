"""Style mixing and layer swapping, StyleGAN3's half: levels by each layer's cutoff, swaps by ws.

See `stylegen.editing.mixing` (its docstring explains the rule); everything here is re-exported
there, which is where callers take it from.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch

from stylegen.errors import InputError
from stylegen.networks.sg3_generator import is_stylegan3

# ---------------------------------------------------------------------------------------------
# StyleGAN3 levels: each ws counts at the resolution that holds its layer's band (module docstring)


@dataclass(frozen=True)
class LayerLevel:
    """One ws of a StyleGAN3 generator: what it drives, and where splits count it."""

    ws_index: int
    name: str  # 'input' (the Fourier features) or the synthesis layer, e.g. 'L3_36_64'
    sampling_rate: float  # output sampling rate of that input / layer
    cutoff: float  # output cutoff frequency (the input's bandwidth), cycles per image
    resolution: int  # band_resolution(cutoff, img_resolution)
    level: str  # 'coarse' | 'middle' | 'fine' (LEVELS)


def band_resolution(cutoff: float, img_resolution: int) -> int:
    """The smallest power of two >= 2 * cutoff, within [4, img_resolution]: the StyleGAN2
    resolution whose Nyquist frequency first holds a band limited to `cutoff`."""
    exponent = math.ceil(math.log2(2 * cutoff) - 1e-6)  # NVIDIA's cutoffs are 7.999999999999999 at times
    return min(max(2**exponent, 4), img_resolution)


def layer_levels(G: torch.nn.Module) -> list[LayerLevel]:
    """One LayerLevel per ws of a StyleGAN3 generator, ws 0 (the input) first."""
    from stylegen.editing.mixing import level_name

    cfg, R = G.config, G.img_resolution
    parts = [("input", cfg.input.sampling_rate, cfg.input.bandwidth)]
    parts += [(s.name, s.out_sampling_rate, s.out_cutoff) for s in cfg.layers]
    out = []
    for i, (name, rate, cutoff) in enumerate(parts):
        res = band_resolution(cutoff, R)
        out.append(LayerLevel(i, name, float(rate), float(cutoff), res, level_name(res)))
    assert len(out) == G.num_ws, (len(out), G.num_ws)
    return out


def sg3_ws_resolutions(G: torch.nn.Module) -> list[int]:
    """The resolution each ws of a StyleGAN3 generator counts at (the `ws_res` of resolve_split)."""
    return [lv.resolution for lv in layer_levels(G)]


def check_same_layers(cfg_src, cfg_dst) -> None:
    """StyleGAN3: the same input and layer specs (rates, cutoffs, sizes, channels, filters)."""
    hint = "layer swapping needs StyleGAN3 networks with the same layers (e.g. a network and its fine-tune)"
    for i, (a, b) in enumerate(zip(cfg_src.layers, cfg_dst.layers)):  # as many: num_ws matched
        if a.name != b.name:
            raise InputError(f"networks differ in synthesis layer {i}: SRC {a.name}, DST {b.name}; {hint}")
    pairs = [("synthesis.input", cfg_src.input, cfg_dst.input)]
    pairs += [(f"synthesis.{a.name}", a, b) for a, b in zip(cfg_src.layers, cfg_dst.layers)]
    for where, a, b in pairs:
        for field in dataclasses.fields(a):
            if field.name == "magnitude_ema_beta":  # training only: it does not change a pixel
                continue
            va, vb = getattr(a, field.name), getattr(b, field.name)
            if va != vb:
                raise InputError(f"networks differ in {where}.{field.name}: SRC {va}, DST {vb}; {hint}")
    if cfg_src.output_scale != cfg_dst.output_scale:
        raise InputError(
            f"networks differ in output_scale: SRC {cfg_src.output_scale}, DST {cfg_dst.output_scale}; {hint}"
        )


def sg3_parts(G: torch.nn.Module) -> list[str]:
    """The synthesis submodule each ws of a StyleGAN3 generator drives: 'input', then the layers."""
    return ["input", *G.synthesis.layer_names]


def layer_swap3(
    G_src: torch.nn.Module,
    G_dst: torch.nn.Module,
    ws_indices: tuple[int, ...] | list[int],
) -> torch.nn.Module:
    """StyleGAN3: a new generator whose part driven by ws i (`sg3_parts`) is G_src's for i in
    `ws_indices` and G_dst's otherwise, whole (affine, weight, bias, magnitude_ema and filters;
    the input's Fourier frequencies, phases and transform).

    Mapping, w_avg and config come from G_src, as in `layer_swap`. Both inputs are left untouched.
    """
    from stylegen.editing.mixing import check_same_architecture

    check_same_architecture(G_src, G_dst)
    if not is_stylegan3(G_src):
        raise TypeError("layer_swap3: StyleGAN3 generators only; StyleGAN2: layer_swap(G_src, G_dst, resolutions)")
    G = copy.deepcopy(G_src)
    for i, name in enumerate(sg3_parts(G)):
        if i not in ws_indices:
            getattr(G.synthesis, name).load_state_dict(getattr(G_dst.synthesis, name).state_dict())
    return G
