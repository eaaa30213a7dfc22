"""Rebuilding a StyleGAN3 Generator3 from the record tree of NVIDIA's stylegan3 pickles.

The records come from the restricted unpickler (`stylegen.formats.nvidia_pickle`): plain data,
nothing from the file run. Every layer's spec (sizes, rates, channels, factors, taps, padding)
is read from the record's plain attributes, the filters are the stored buffers, and the tensor
names and shapes the specs imply are checked against the file before anything is built, so what
we allocate is what the file holds. Facts: ../shared/compat/FORMAT.md, "StyleGAN3 network pickles".
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from stylegen.formats.nvidia_pickle import Record
from stylegen.formats.state_check import shape_mismatches
from stylegen.networks.sg3_generator import Generator3, Generator3Config
from stylegen.networks.sg3_synthesis import InputSpec, LayerSpec

CLASSES = {"Generator", "MappingNetwork", "FullyConnectedLayer", "SynthesisNetwork", "SynthesisInput", "SynthesisLayer"}
_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS_KEYS = {
    "channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
    "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res",
    "conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters", "conv_clamp", "magnitude_ema_beta",
}  # fmt: skip


def has_synthesis_input(rec: Any) -> bool:
    """Whether a record tree holds a SynthesisInput anywhere (FORMAT.md: "a StyleGAN3 generator")."""
    return bool(_find(rec, "SynthesisInput"))


def _find(rec: Any, class_name: str, prefix: str = "", depth: int = 0) -> list[str]:
    if not isinstance(rec, Record) or depth > 8:
        return []
    found = [prefix or "(top)"] if rec.class_name == class_name else []
    modules = rec.state.get("_modules")
    for name, sub in modules.items() if isinstance(modules, dict) else ():
        found += _find(sub, class_name, f"{prefix}{name}" if not prefix else f"{prefix}.{name}", depth + 1)
    return found


def generator3_from_record(rec: Record) -> Generator3:
    """Our Generator3 with the record's weights (strict: every name and shape must match); ValueError if not."""
    from stylegen.formats.nvidia import collect_state

    where = _find(rec, "SynthesisInput")
    if where != ["synthesis.input"]:
        raise ValueError(f"SynthesisInput at {', '.join(where)}: a StyleGAN3 generator has one, at synthesis.input")
    classes: set = set()
    state = collect_state(rec, classes=classes)
    foreign = sorted(classes - CLASSES)
    if foreign:
        raise ValueError(f"unsupported network class(es) {', '.join(foreign)} in a StyleGAN3 generator")
    cfg = config3_from_record(rec)
    problems = shape_mismatches(state, expected_shapes(cfg), "the layer specs need")
    if problems:
        raise ValueError(f"weights do not match the StyleGAN3 layer specs: {problems}")
    G = Generator3(cfg)
    G.load_state_dict(state)
    G.source_format = f"NVIDIA PyTorch pickle (stylegan3, StyleGAN3-{cfg.architecture[-1].upper()} generator), read without executing code"
    G.source_notes = _notes(rec)
    return G


def config3_from_record(rec: Record) -> Generator3Config:
    """Generator3Config from the Generator record's kwargs and its sub-records' attributes."""
    kwargs = dict(_mapping(rec.state.get("_init_kwargs"), "Generator _init_kwargs"))
    kwargs.update(zip(_TOP, rec.state.get("_init_args") or ()))
    mapping = dict(_mapping(kwargs.pop("mapping_kwargs", None), "mapping_kwargs"))
    top = {k: _int(kwargs.pop(k, None), f"Generator {k}") for k in _TOP}
    _refuse_unknown(mapping, _MAPPING_KEYS, "mapping_kwargs")
    _refuse_unknown(kwargs, _SYNTHESIS_KEYS, "Generator _init_kwargs")
    synthesis = _sub(rec, "synthesis", "SynthesisNetwork")
    names = synthesis.state.get("layer_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("synthesis.layer_names must be a non-empty list of names")
    mapping_rec = _sub(rec, "mapping", "MappingNetwork")
    num_layers = _int(mapping.get("num_layers", 2), "mapping num_layers")
    if "num_layers" in mapping_rec.state and _int(mapping_rec.state["num_layers"], "mapping.num_layers") != num_layers:
        raise ValueError("mapping.num_layers differs from mapping_kwargs num_layers")
    return Generator3Config(
        **top,
        input=_input_spec(_sub(synthesis, "input", "SynthesisInput")),
        layers=tuple(_layer_spec(_sub(synthesis, n, "SynthesisLayer"), n) for n in names),
        mapping_layers=num_layers,
        mapping_lr_multiplier=_float(mapping.get("lr_multiplier", 0.01), "mapping lr_multiplier"),
        w_avg_beta=_float(mapping_rec.state.get("w_avg_beta", mapping.get("w_avg_beta", 0.998)), "w_avg_beta"),
        output_scale=_float(synthesis.state.get("output_scale", kwargs.get("output_scale", 0.25)), "output_scale"),
        channel_base=_int(kwargs.get("channel_base", 32768), "channel_base"),
        channel_max=_int(kwargs.get("channel_max", 512), "channel_max"),
    )


def _input_spec(rec: Record) -> InputSpec:
    st = rec.state
    return InputSpec(
        channels=_int(st.get("channels"), "synthesis.input.channels"),
        size=_size(st.get("size"), "synthesis.input.size"),
        sampling_rate=_float(st.get("sampling_rate"), "synthesis.input.sampling_rate"),
        bandwidth=_float(st.get("bandwidth"), "synthesis.input.bandwidth"),
    )


def _layer_spec(rec: Record, name: str) -> LayerSpec:
    st, where = rec.state, f"synthesis.{name}"
    padding = st.get("padding")
    if not isinstance(padding, (list, tuple)) or len(padding) != 4:
        raise ValueError(f"{where}.padding must be a list of 4 ints")
    clamp = st.get("conv_clamp")
    return LayerSpec(
        name=name,
        is_torgb=_bool(st.get("is_torgb"), f"{where}.is_torgb"),
        is_critically_sampled=_bool(st.get("is_critically_sampled"), f"{where}.is_critically_sampled"),
        in_channels=_int(st.get("in_channels"), f"{where}.in_channels"),
        out_channels=_int(st.get("out_channels"), f"{where}.out_channels"),
        in_size=_size(st.get("in_size"), f"{where}.in_size"),
        out_size=_size(st.get("out_size"), f"{where}.out_size"),
        in_sampling_rate=_float(st.get("in_sampling_rate"), f"{where}.in_sampling_rate"),
        out_sampling_rate=_float(st.get("out_sampling_rate"), f"{where}.out_sampling_rate"),
        in_cutoff=_float(st.get("in_cutoff"), f"{where}.in_cutoff"),
        out_cutoff=_float(st.get("out_cutoff"), f"{where}.out_cutoff"),
        conv_kernel=_int(st.get("conv_kernel"), f"{where}.conv_kernel"),
        up_factor=_int(st.get("up_factor"), f"{where}.up_factor"),
        down_factor=_int(st.get("down_factor"), f"{where}.down_factor"),
        up_taps=_int(st.get("up_taps"), f"{where}.up_taps"),
        down_taps=_int(st.get("down_taps"), f"{where}.down_taps"),
        down_radial=_bool(st.get("down_radial"), f"{where}.down_radial"),
        padding=tuple(_int(p, f"{where}.padding", signed=True) for p in padding),
        conv_clamp=None if clamp is None else _float(clamp, f"{where}.conv_clamp"),
        magnitude_ema_beta=_float(st.get("magnitude_ema_beta", 0.999), f"{where}.magnitude_ema_beta"),
        in_half_width=_float(st.get("in_half_width"), f"{where}.in_half_width"),
        out_half_width=_float(st.get("out_half_width"), f"{where}.out_half_width"),
    )


def expected_shapes(cfg: Generator3Config) -> dict[str, tuple[int, ...]]:
    """Every tensor name of NVIDIA's StyleGAN3 Generator state dict, with the shape cfg needs."""
    w, out = cfg.w_dim, {"mapping.w_avg": (cfg.w_dim,)}
    features = cfg.z_dim + (w if cfg.c_dim else 0)
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"], out[f"mapping.fc{i}.bias"] = (w, features if i == 0 else w), (w,)
    if cfg.c_dim:
        out["mapping.embed.weight"], out["mapping.embed.bias"] = (w, cfg.c_dim), (w,)
    c0 = cfg.input.channels
    out.update({"synthesis.input.weight": (c0, c0), "synthesis.input.affine.weight": (4, w)})
    out.update({"synthesis.input.affine.bias": (4,), "synthesis.input.transform": (3, 3)})
    out.update({"synthesis.input.freqs": (c0, 2), "synthesis.input.phases": (c0,)})
    for s in cfg.layers:
        p, k = f"synthesis.{s.name}.", s.conv_kernel
        out[p + "weight"], out[p + "bias"] = (s.out_channels, s.in_channels, k, k), (s.out_channels,)
        out[p + "affine.weight"], out[p + "affine.bias"] = (s.in_channels, w), (s.in_channels,)
        out[p + "magnitude_ema"] = ()
        out.update({p + name: shape for name, shape in s.filter_shapes().items()})
    return out


def _notes(rec: Record) -> list[str]:
    notes = ["read without executing code (module_src ignored)"]
    synthesis = rec.state["_modules"]["synthesis"].state  # checked by config3_from_record
    fp16 = synthesis.get("num_fp16_res", (rec.state.get("_init_kwargs") or {}).get("num_fp16_res", 4))
    if isinstance(fp16, numbers.Integral) and fp16 > 0:
        notes.append(f"num_fp16_res={fp16} ignored: runs in float32 (NVIDIA's GPU path used float16 there)")
    notes.append("noise_mode is ignored: StyleGAN3 has no noise inputs")
    return notes


# ---------------------------------------------------------------------------------------------
# Checked reads of the records' plain attributes (a file may put anything there).


def _sub(rec: Record, name: str, class_name: str) -> Record:
    modules = rec.state.get("_modules")
    sub = modules.get(name) if isinstance(modules, dict) else None
    if not isinstance(sub, Record) or sub.class_name != class_name:
        got = sub.class_name if isinstance(sub, Record) else type(sub).__name__
        raise ValueError(f"StyleGAN3 generator: {name} must be a {class_name} network object, got {got}")
    return sub


def _mapping(x: Any, what: str) -> dict:
    if x is None:
        return {}
    if not isinstance(x, dict) or not all(isinstance(k, str) for k in x):
        raise ValueError(f"{what} must be a dict of named arguments")
    return x


def _refuse_unknown(opts: dict, known: set, where: str) -> None:
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unsupported StyleGAN3 {where} option(s) {', '.join(unknown)}")


def _int(x: Any, what: str, signed: bool = False) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral) or (not signed and x < 0):
        raise ValueError(f"{what} must be a {'' if signed else 'non-negative '}int; got {_show(x)}")
    if abs(int(x)) > 2**31:
        raise ValueError(f"{what} = {int(x)} is out of range")
    return int(x)


def _float(x: Any, what: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real) or not np.isfinite(float(x)):
        raise ValueError(f"{what} must be a finite number; got {_show(x)}")
    return float(x)


def _bool(x: Any, what: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{what} must be a bool; got {_show(x)}")
    return bool(x)


def _size(x: Any, what: str) -> tuple[int, int]:
    if isinstance(x, np.ndarray) and x.shape == (2,) and x.dtype.kind in "iu":
        x = [x[0], x[1]]
    elif isinstance(x, numbers.Integral):
        x = [x, x]
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        raise ValueError(f"{what} must be a (width, height) pair of ints; got {_show(x)}")
    return (_int(x[0], what), _int(x[1], what))


def _show(x: Any) -> str:
    return repr(x)[:40] if isinstance(x, (numbers.Number, str, np.ndarray)) else f"a {type(x).__name__}"
