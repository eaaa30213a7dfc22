"""NVIDIA's legacy TensorFlow networks -> our Generator / Discriminator, with the original's weights.

TF variable names map to NVIDIA's PyTorch names (ours) as in docs/formats.md, "Legacy TensorFlow
pickles": dense weights are transposed, conv kernels go from [kh, kw, in, out] to
[out, in, kh, kw], the up-sampling kernels (Conv0_up, Skip) are also flipped spatially, style
biases get TF's run-time +1, `noise{i}` becomes the const noise of conv layer i and
`dlatent_avg` the mapping's w_avg. Every variable must map to a parameter (an unknown one means a
network we do not build) and every shape must be what the build arguments imply before anything
is allocated.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from stylegen.formats.guarded_unpickler import Refused
from stylegen.formats.state_check import shape_mismatches
from stylegen.formats.tf_kwargs import discriminator_config, generator_config
from stylegen.formats.tf_pickle import TFFormatError, TFNetwork, read_tf_pickle
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig

_IGNORED = {"lod", "synthesis/lod"}  # progressive-growing level of StyleGAN2 TF (0.0): no parameter
_G_LAYER = re.compile(
    r"synthesis/(\d+)x\1/(Conv|Conv0_up|Conv1|ToRGB)/(weight|mod_weight|mod_bias|noise_strength|bias)"
)
_G_SKIP = re.compile(r"synthesis/(\d+)x\1/Skip/weight")  # architecture 'resnet': the 1x1 shortcut
_G_PARAM = {"weight": "weight", "mod_weight": "affine.weight", "mod_bias": "affine.bias"}
_D_LAYER = re.compile(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip)/(weight|bias)")
_D_HEAD = {"4x4/Conv": "b4.conv", "4x4/Dense0": "b4.fc", "Output": "b4.out", "LabelEmbed": "mapping.embed"}
_D_BLOCK = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip"}


def load_tf_network(path: Path, which: str) -> Generator | Discriminator:
    """One network ('G_ema' = Gs, 'G' or 'D') of a TF network pickle; NetworkLoadError (one line) otherwise."""
    from stylegen.formats.snapshot import NetworkLoadError

    try:
        with open(path, "rb") as f:
            networks = read_tf_pickle(f)
    except Refused as e:  # the file asks for something a network file never needs
        raise NetworkLoadError(path, str(e) if str(e).startswith("refused") else f"refused: {e}") from None
    except EOFError:
        raise NetworkLoadError(path, "truncated pickle (the file ends before its data does)") from None
    except pickle.UnpicklingError as e:
        raise NetworkLoadError(path, f"corrupt or truncated pickle ({type(e).__name__}: {_line(e)})") from None
    except TFFormatError as e:  # read_tf_pickle's own checks: what the file is, and why we do not read it
        raise NetworkLoadError(path, _line(e)) from None
    except (ValueError, TypeError, AttributeError, RuntimeError, IndexError, KeyError, MemoryError, OverflowError) as e:
        raise NetworkLoadError(path, f"corrupt pickle ({type(e).__name__}: {_line(e)})") from None
    net = networks.get(which)
    if net is None:
        raise NetworkLoadError(path, f"pickle has no '{which}' network (has: {', '.join(networks)})")
    try:
        return discriminator_from_tf(net) if which == "D" else generator_from_tf(net)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise NetworkLoadError(path, f"'{which}' cannot be rebuilt: {_line(e)}") from None


def describe(net: TFNetwork) -> str:
    """source_format of a network read from a TF pickle."""
    return f"NVIDIA TensorFlow pickle ({net.variant}, state version {net.version}), read without executing code"


# ---------------------------------------------------------------------------------------------
# Generator


def generator_from_tf(net: TFNetwork) -> Generator:
    """Our Generator with a G / Gs network's weights; ValueError if the network is not one we build."""
    _check_generator_variables(net.variables)
    cfg, notes = generator_config(net.static_kwargs)
    _check_architecture(net.variables, cfg)
    _check_mapping_width(net.variables, cfg)
    state = generator_state(net.variables, cfg)
    _check_shapes(state, generator_shapes(cfg), "generator")
    G = Generator(cfg)
    _load(G, state)
    notes = ["build_module_src ignored (never executed)", *notes]
    if any(name in net.variables for name in _IGNORED):
        notes.append("variable lod ignored (progressive-growing level, unused by StyleGAN2)")
    G.source_format, G.source_notes = describe(net), notes
    return G


def _check_generator_variables(variables: dict) -> None:
    """Refuse, by name, the TF generators we do not build, before looking at their arguments."""
    if "mapping/LabelConcat/weight" in variables:
        raise ValueError(
            "conditional StyleGAN2 TF generator (mapping/LabelConcat: labels concatenated to z before "
            "normalisation) is not supported; StyleGAN2-ADA TF's LabelEmbed is"
        )
    if any(re.fullmatch(r"synthesis/ToRGB_lod\d+/.*", n) for n in variables):
        raise ValueError("progressive-growing generator (ToRGB_lod*, StyleGAN2 configs A-D) is not supported")


def _check_architecture(variables: dict, cfg: GeneratorConfig) -> None:
    """The variables must be those of static_kwargs' architecture: Skip convolutions mean 'resnet',
    one ToRGB (in the last block) 'orig' or 'resnet', a ToRGB per block 'skip'."""
    if cfg.img_resolution == 4:
        return  # one block: the three architectures are the same network
    if any(re.fullmatch(r"synthesis/\d+x\d+/Skip/weight", n) for n in variables):
        found = "'resnet' (Skip convolutions)"
    elif "synthesis/4x4/ToRGB/weight" not in variables:
        found = "'orig' (one ToRGB, no Skip convolutions)"
    else:
        found = "'skip' (a ToRGB per block)"
    if found.split()[0] != repr(cfg.architecture):
        raise ValueError(
            f"the variables are those of a generator of architecture {found}, "
            f"but static_kwargs says architecture {cfg.architecture!r}"
        )


def _check_mapping_width(variables: dict, cfg: GeneratorConfig) -> None:
    # StyleGAN2 TF's mapping_fmaps defaults to 512 whatever dlatent_size is; the shapes tell.
    w = variables.get("mapping/Dense0/weight")
    if cfg.mapping_layers > 1 and w is not None and w.ndim == 2 and w.shape[1] != cfg.w_dim:
        raise ValueError(
            f"mapping layers {w.shape[1]} wide (static_kwargs mapping_fmaps; StyleGAN2 TF's default is 512) "
            f"are not supported: ours are w_dim = {cfg.w_dim} wide"
        )


def generator_state(variables: dict, cfg: GeneratorConfig) -> dict[str, torch.Tensor]:
    """Our state dict (without the resample filters) from a generator's flat TF variables."""
    state: dict[str, np.ndarray] = {}
    unknown = []
    for name, v in variables.items():
        ours = _generator_name(name, cfg.num_ws)
        if ours is None:
            if name not in _IGNORED or v.ndim != 0:
                unknown.append(name)
            continue
        state[ours] = _generator_value(name, v)
    if unknown:
        more = f" (+{len(unknown) - 4} more)" if len(unknown) > 4 else ""
        raise ValueError(f"unexpected TF generator variable(s) {', '.join(unknown[:4])}{more}")
    return {k: _tensor(v) for k, v in state.items()}


def _generator_name(name: str, num_ws: int) -> str | None:
    if name == "dlatent_avg":
        return "mapping.w_avg"
    if m := re.fullmatch(r"mapping/Dense(\d+)/(weight|bias)", name):
        return f"mapping.fc{int(m.group(1))}.{m.group(2)}"
    if m := re.fullmatch(r"mapping/LabelEmbed/(weight|bias)", name):
        return f"mapping.embed.{m.group(1)}"
    if name == "synthesis/4x4/Const/const":
        return "synthesis.b4.const"
    if (m := re.fullmatch(r"synthesis/noise(\d+)", name)) and int(m.group(1)) < num_ws - 1:
        i = int(m.group(1))  # conv layer i: b4.conv1, then conv0 / conv1 of each block
        return f"synthesis.b{2 ** ((i + 5) // 2)}.{'conv1' if i % 2 == 0 else 'conv0'}.noise_const"
    if (m := _G_SKIP.fullmatch(name)) and int(m.group(1)) > 4:
        return f"synthesis.b{int(m.group(1))}.skip.weight"
    if m := _G_LAYER.fullmatch(name):
        r, layer, param = int(m.group(1)), m.group(2), m.group(3)
        ours = {"Conv": "conv1", "Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb"}[layer]
        valid = {"Conv": r == 4, "Conv0_up": r > 4, "Conv1": r > 4, "ToRGB": True}[layer]
        if not valid or (layer == "ToRGB" and param == "noise_strength"):
            return None
        return f"synthesis.b{r}.{ours}.{_G_PARAM.get(param, param)}"
    return None


def _generator_value(name: str, v: np.ndarray) -> np.ndarray:
    kind = name.rsplit("/", 1)[-1]
    if name.startswith("synthesis/noise"):
        return _rank(v, 4, name)[0, 0]  # [1, 1, r, r] -> [r, r]
    if name == "synthesis/4x4/Const/const":
        return _rank(v, 4, name)[0]  # [1, C, 4, 4] -> [C, 4, 4]
    if kind == "weight" and name.startswith("synthesis/"):
        k = _rank(v, 4, name)
        up = "/Conv0_up/" in name or "/Skip/" in name
        return _conv(k[::-1, ::-1] if up else k)  # TF's up-sampling convs are flipped
    if kind in ("weight", "mod_weight"):
        return _rank(v, 2, name).T  # dense [in, out] -> [out, in]
    if kind == "mod_bias":
        return _rank(v, 1, name) + np.float32(1)  # TF adds the 1 at run time; ours stores it
    return _rank(v, 0 if kind == "noise_strength" else 1, name)


def generator_shapes(cfg: GeneratorConfig) -> dict[str, tuple]:
    """Name -> shape of every tensor of our Generator for cfg, except the resample filters."""
    w, c = cfg.w_dim, cfg.c_dim
    shapes: dict[str, tuple] = {"mapping.w_avg": (w,)}
    if c:
        shapes.update({"mapping.embed.weight": (w, c), "mapping.embed.bias": (w,)})
    for i in range(cfg.mapping_layers):
        shapes[f"mapping.fc{i}.weight"] = (w, cfg.z_dim + (w if c else 0) if i == 0 else w)
        shapes[f"mapping.fc{i}.bias"] = (w,)
    ch = {r: min(cfg.channel_base // r, cfg.channel_max) for r in _resolutions(cfg.img_resolution)}
    shapes["synthesis.b4.const"] = (ch[4], 4, 4)
    for r in ch:
        layers = [("conv0", ch[r // 2], 3)] if r > 4 else []
        layers += [("conv1", ch[r], 3)]
        if cfg.architecture == "skip" or r == cfg.img_resolution:  # 'orig' / 'resnet': last block only
            layers += [("torgb", ch[r], 1)]
        if cfg.architecture == "resnet" and r > 4:
            shapes[f"synthesis.b{r}.skip.weight"] = (ch[r], ch[r // 2], 1, 1)
        for layer, cin, k in layers:
            p = f"synthesis.b{r}.{layer}."
            cout = cfg.img_channels if layer == "torgb" else ch[r]
            shapes.update({p + "weight": (cout, cin, k, k), p + "bias": (cout,)})
            shapes.update({p + "affine.weight": (cin, w), p + "affine.bias": (cin,)})
            if layer != "torgb":
                shapes.update({p + "noise_strength": (), p + "noise_const": (r, r)})
    return shapes


# ---------------------------------------------------------------------------------------------
# Discriminator


def discriminator_from_tf(net: TFNetwork) -> Discriminator:
    """Our (resnet) Discriminator with a D network's weights, for fine-tuning; ValueError if unsupported."""
    if any(re.fullmatch(r"FromRGB_lod\d+/.*", n) for n in net.variables):
        raise ValueError("discriminator architecture 'orig' (FromRGB_lod*, progressive growing) is not supported")
    cfg, freeze_layers, notes = discriminator_config(net.static_kwargs)
    if cfg.c_dim and "LabelEmbed/weight" not in net.variables:
        raise ValueError(
            "conditional StyleGAN2 TF discriminator (labels projected without LabelEmbed) is not supported"
        )
    cfg = _mbstd_from_shapes(cfg, net.variables)
    state = discriminator_state(net.variables)
    _check_shapes(state, discriminator_shapes(cfg), "discriminator")
    D = Discriminator(cfg, freeze_layers=freeze_layers)
    _load(D, state)
    D.source_format, D.source_notes = describe(net), ["build_module_src ignored (never executed)", *notes]
    return D


def _mbstd_from_shapes(cfg: DiscriminatorConfig, variables: dict) -> DiscriminatorConfig:
    """StyleGAN2 TF skips the minibatch-std layer for mbstd_group_size <= 1: the 4x4 conv shows it."""
    w, b = variables.get("4x4/Conv/weight"), variables.get("4x4/Conv/bias")
    if w is not None and b is not None and w.ndim == 4 and b.ndim == 1 and w.shape[2] == b.shape[0]:
        if cfg.mbstd_group_size in (0, 1) or cfg.mbstd_num_channels == 0:
            return DiscriminatorConfig.from_dict({**cfg.to_dict(), "mbstd_num_channels": 0})
    return cfg


def discriminator_state(variables: dict) -> dict[str, torch.Tensor]:
    """Our state dict (without the resample filters) from a discriminator's TF variables."""
    state, unknown = {}, []
    for name, v in variables.items():
        head, _, param = name.rpartition("/")
        if m := _D_LAYER.fullmatch(name):
            ours = f"b{int(m.group(1))}.{_D_BLOCK[m.group(2)]}.{param}"
        elif head in _D_HEAD and param in ("weight", "bias"):
            ours = f"{_D_HEAD[head]}.{param}"
        elif (m := re.fullmatch(r"Mapping(\d+)", head)) and param in ("weight", "bias"):
            ours = f"mapping.fc{int(m.group(1))}.{param}"
        else:
            if name not in _IGNORED or v.ndim != 0:
                unknown.append(name)
            continue
        dense = head in ("4x4/Dense0", "Output", "LabelEmbed") or head.startswith("Mapping")
        if param == "bias":
            state[ours] = _rank(v, 1, name)
        elif dense:
            state[ours] = _rank(v, 2, name).T
        else:
            state[ours] = _conv(_rank(v, 4, name))  # no spatial flips in D
    if unknown:
        more = f" (+{len(unknown) - 4} more)" if len(unknown) > 4 else ""
        raise ValueError(f"unexpected TF discriminator variable(s) {', '.join(unknown[:4])}{more}")
    return {k: _tensor(v) for k, v in state.items()}


def discriminator_shapes(cfg: DiscriminatorConfig) -> dict[str, tuple]:
    """Name -> shape of every tensor of our Discriminator for cfg, except the resample filters."""
    res, ch = cfg.img_resolution, cfg.channels
    shapes: dict[str, tuple] = {
        f"b{res}.fromrgb.weight": (ch(res), cfg.img_channels, 1, 1),
        f"b{res}.fromrgb.bias": (ch(res),),
    }
    for r in _resolutions(res)[:0:-1]:  # res .. 8
        p = f"b{r}."
        shapes.update({p + "conv0.weight": (ch(r), ch(r), 3, 3), p + "conv0.bias": (ch(r),)})
        shapes.update({p + "conv1.weight": (ch(r // 2), ch(r), 3, 3), p + "conv1.bias": (ch(r // 2),)})
        shapes[p + "skip.weight"] = (ch(r // 2), ch(r), 1, 1)
    c4, cmap = ch(4), ch(4) if cfg.c_dim else 0
    shapes.update({"b4.conv.weight": (c4, c4 + cfg.mbstd_num_channels, 3, 3), "b4.conv.bias": (c4,)})
    shapes.update({"b4.fc.weight": (c4, c4 * 16), "b4.fc.bias": (c4,)})
    shapes.update({"b4.out.weight": (cmap or 1, c4), "b4.out.bias": (cmap or 1,)})
    if cfg.c_dim:
        shapes.update({"mapping.embed.weight": (cmap, cfg.c_dim), "mapping.embed.bias": (cmap,)})
        for i in range(cfg.mapping_layers):
            shapes.update({f"mapping.fc{i}.weight": (cmap, cmap), f"mapping.fc{i}.bias": (cmap,)})
    return shapes


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _resolutions(res: int) -> list[int]:
    return [2**i for i in range(2, res.bit_length())]


def _rank(v: np.ndarray, ndim: int, name: str) -> np.ndarray:
    if v.ndim != ndim:
        raise ValueError(f"TF variable {name} has shape {list(v.shape)}, expected {ndim} dimensions")
    return v


def _tensor(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(v, dtype=np.float32, order="C"))  # a copy, native byte order, 0-d kept


def _conv(k: np.ndarray) -> np.ndarray:
    return k.transpose(3, 2, 0, 1)  # TF [kh, kw, in, out] -> [out, in, kh, kw]


def _check_shapes(state: dict, expected: dict, what: str) -> None:
    """ValueError naming the first mismatches: checked before the network is built, so the build
    arguments can never make us allocate more than the file holds."""
    problems = shape_mismatches(state, expected, need="the build arguments need")
    if problems:
        raise ValueError(f"{what} weights do not match static_kwargs: {problems}")


def _load(net: torch.nn.Module, state: dict) -> None:
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("resample_filter")]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights do not match the network: {', '.join((missing + result.unexpected_keys)[:4])}")


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."
