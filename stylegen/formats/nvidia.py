"""Reading NVIDIA's StyleGAN2(-ADA) network pickles without running any code from them.

The restricted unpickler of `stylegen.formats.nvidia_pickle` allows only the globals a real file
holds (docs/formats.md, "NVIDIA network pickles"), lets BUILD touch only objects it created and
refuses allocations larger than the file; each persistent network object becomes a plain
`Record(class_name, state)`, and `module_src` is never looked at. Our Generator is then rebuilt
from the top record's `_init_kwargs` and the collected tensors.
"""

from __future__ import annotations

import torch

from stylegen.formats.nvidia_pickle import (  # noqa: F401  (re-exported: the reader's public names)
    ALLOWED,
    EasyDict,
    Record,
    Refused,
    RefusedGlobal,
    RestrictedUnpickler,
    read_records,
)
from stylegen.formats.state_check import shape_mismatches
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import ARCHITECTURES, Generator, GeneratorConfig
from stylegen.networks.sg3_generator import Generator3

# ---------------------------------------------------------------------------------------------
# Rebuilding our Generator from a Generator record.

SUPPORTED_CLASSES = {
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "FullyConnectedLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "Conv2dLayer",
    "MinibatchStdLayer",
}
_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta", "embed_features", "layer_features", "activation"}
_SYNTHESIS_KEYS = {
    "channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture", "resample_filter",
    "fp16_channels_last", "use_noise", "kernel_size", "activation", "fused_modconv_default",
}  # fmt: skip


def config_from_record(rec: Record) -> GeneratorConfig:
    """GeneratorConfig from a Generator record's constructor arguments; ValueError if unsupported."""
    kwargs = dict(rec.state.get("_init_kwargs") or {})
    kwargs.update(zip(_POSITIONAL, rec.state.get("_init_args") or ()))
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    top = {k: kwargs.pop(k) for k in _POSITIONAL if k in kwargs}
    synthesis.update(kwargs)  # stylegan3's networks_stylegan2 takes synthesis kwargs at top level
    missing = [k for k in _POSITIONAL if k not in top]
    if missing:
        raise ValueError(f"Generator _init_kwargs lack {', '.join(missing)}")
    _check_options(mapping, _MAPPING_KEYS, "mapping_kwargs")
    _check_options(synthesis, _SYNTHESIS_KEYS, "synthesis_kwargs")
    w_dim = top["w_dim"]
    for key, want in (("embed_features", w_dim), ("layer_features", w_dim), ("activation", "lrelu")):
        if mapping.get(key) not in (None, want):
            raise ValueError(f"unsupported mapping option {key}={mapping[key]!r} (only {want!r})")
    for key, want in (("use_noise", True), ("kernel_size", 3), ("activation", "lrelu")):
        if synthesis.get(key, want) != want:
            raise ValueError(f"unsupported synthesis option {key}={synthesis[key]!r} (only {want!r})")
    arch = synthesis.get("architecture", "skip")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unsupported generator architecture {arch!r} (one of {', '.join(ARCHITECTURES)})")
    conv_clamp = synthesis.get("conv_clamp")
    return GeneratorConfig(
        **{k: int(v) for k, v in top.items()},
        mapping_layers=int(mapping.get("num_layers", 8)),
        mapping_lr_multiplier=float(mapping.get("lr_multiplier", 0.01)),
        w_avg_beta=float(mapping.get("w_avg_beta", 0.995)),
        channel_base=int(synthesis.get("channel_base", 32768)),
        channel_max=int(synthesis.get("channel_max", 512)),
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
        resample_filter=tuple(float(t) for t in synthesis.get("resample_filter", (1, 3, 3, 1))),
        architecture=arch,
    )


def _check_options(opts: dict, known: set, where: str) -> None:
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unsupported {where} option(s) {', '.join(unknown)}")


def collect_state(rec: Record, prefix: str = "", out: dict | None = None, classes: set | None = None) -> dict:
    """State dict {dotted name: tensor} of a record tree (its `_parameters`, `_buffers`, `_modules`)."""
    out = {} if out is None else out
    if classes is not None:
        classes.add(rec.class_name)
    transient = rec.state.get("_non_persistent_buffers_set") or ()
    for kind in ("_parameters", "_buffers"):
        for name, t in (rec.state.get(kind) or {}).items():
            if t is None or (kind == "_buffers" and name in transient):
                continue
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{prefix}{name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t.detach()
    for name, sub in (rec.state.get("_modules") or {}).items():
        if sub is None:
            continue
        if not isinstance(sub, Record):
            raise TypeError(f"module {prefix}{name} is a {type(sub).__name__}, not a network object")
        collect_state(sub, f"{prefix}{name}.", out, classes)
    return out


def _state_of(rec: Record, class_name: str) -> dict:
    if not isinstance(rec, Record) or rec.class_name != class_name:
        got = rec.class_name if isinstance(rec, Record) else type(rec).__name__
        raise ValueError(f"expected a {class_name} network object, got {got}")
    classes: set = set()
    state = collect_state(rec, classes=classes)
    foreign = sorted(classes - SUPPORTED_CLASSES)
    if foreign:
        hint = " (a StyleGAN3 generator)" if "SynthesisInput" in foreign else ""
        raise ValueError(f"unsupported network class(es) {', '.join(foreign)}{hint}")
    return state


def _load_strict(net: torch.nn.Module, state: dict) -> None:
    """Load state into net; ValueError listing the first mismatched names/shapes."""
    problems = shape_mismatches(state, {k: tuple(v.shape) for k, v in net.state_dict().items()})
    if problems:
        raise ValueError(f"weights do not match the architecture: {problems}")
    net.load_state_dict(state)


def generator_from_record(rec: Record) -> Generator | Generator3:
    """Our Generator with the record's weights (strict: every name and shape must match).

    A tree holding a SynthesisInput is a StyleGAN3 generator: `nvidia_sg3` rebuilds it.
    """
    from stylegen.formats import nvidia_sg3

    if isinstance(rec, Record) and rec.class_name == "Generator" and nvidia_sg3.has_synthesis_input(rec):
        return nvidia_sg3.generator3_from_record(rec)
    state = _state_of(rec, "Generator")
    cfg = config_from_record(rec)
    _check_sizes_before_building(cfg, state)
    G = Generator(cfg)
    _load_strict(G, state)
    G.source_format, G.source_notes = describe_source(rec)
    return G


def describe_source(rec: Record) -> tuple[str, list[str]]:
    """(source_format, source_notes) of a network record: which code wrote it, what was ignored."""
    kwargs = dict(rec.state.get("_init_kwargs") or {})
    synthesis = kwargs.get("synthesis_kwargs")
    if isinstance(synthesis, dict):
        code = "stylegan2-ada-pytorch"
    elif rec.class_name == "Generator" and set(kwargs) & _SYNTHESIS_KEYS:
        code, synthesis = "stylegan3 code, StyleGAN2 network", kwargs  # networks_stylegan2 layout
    else:
        code, synthesis = "stylegan2-ada-pytorch / stylegan3", kwargs
    notes = ["read without executing code (module_src ignored)"]
    fp16 = int(synthesis.get("num_fp16_res", kwargs.get("num_fp16_res", 0)) or 0)
    if fp16 > 0:
        notes.append(f"num_fp16_res={fp16} ignored: runs in float32 (NVIDIA's GPU path used float16 there)")
    return f"NVIDIA pickle ({code})", notes


def _check_sizes_before_building(cfg: GeneratorConfig, state: dict) -> None:
    """ValueError unless the largest tensors the constructor arguments imply are in the file.

    The arguments could ask for any size (img_resolution 2**20, channel_max 10**6); checking
    these shapes first bounds what we allocate by what the file itself holds.
    """
    expected = {"mapping.w_avg": (cfg.w_dim,)}
    in_features = cfg.z_dim + (cfg.w_dim if cfg.c_dim else 0)
    for i in range(cfg.mapping_layers):
        expected[f"mapping.fc{i}.weight"] = (cfg.w_dim, in_features if i == 0 else cfg.w_dim)
    if cfg.c_dim:
        expected["mapping.embed.weight"] = (cfg.w_dim, cfg.c_dim)
    r, arch = 4, cfg.architecture
    while r <= cfg.img_resolution:
        c = min(cfg.channel_base // r, cfg.channel_max)
        expected[f"synthesis.b{r}.conv1.weight"] = (c, c, 3, 3)
        if arch == "skip" or r == cfg.img_resolution:  # 'orig' / 'resnet': a torgb in the last block only
            expected[f"synthesis.b{r}.torgb.weight"] = (cfg.img_channels, c, 1, 1)
        if arch == "resnet" and r > 4:
            expected[f"synthesis.b{r}.skip.weight"] = (c, min(cfg.channel_base // (r // 2), cfg.channel_max), 1, 1)
        r *= 2
    where = f"the constructor arguments (architecture {arch!r})"
    for name, shape in expected.items():
        got = state.get(name)
        if got is None:
            raise ValueError(f"weights do not match {where}: missing {name} {shape}")
        if tuple(got.shape) != shape:
            raise ValueError(
                f"weights do not match {where}: {name} has shape {tuple(got.shape)}, the arguments need {shape}"
            )


_D_KEYS = {
    "c_dim",
    "img_resolution",
    "img_channels",
    "architecture",
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "cmap_dim",
    "block_kwargs",
    "mapping_kwargs",
    "epilogue_kwargs",
}


def discriminator_from_record(rec: Record) -> Discriminator:
    """Our (resnet) Discriminator from NVIDIA's, for fine-tuning; ValueError if unsupported."""
    state = _state_of(rec, "Discriminator")
    kw = dict(rec.state.get("_init_kwargs") or {})
    kw.update(zip(("c_dim", "img_resolution", "img_channels"), rec.state.get("_init_args") or ()))
    _check_options(kw, _D_KEYS, "Discriminator")
    if kw.get("architecture", "resnet") != "resnet":
        raise ValueError(f"unsupported discriminator architecture {kw['architecture']!r} (only 'resnet')")
    epilogue = dict(kw.get("epilogue_kwargs") or {})
    cfg = DiscriminatorConfig(
        c_dim=int(kw["c_dim"]),
        img_resolution=int(kw["img_resolution"]),
        img_channels=int(kw["img_channels"]),
        channel_base=int(kw.get("channel_base", 32768)),
        channel_max=int(kw.get("channel_max", 512)),
        conv_clamp=None if kw.get("conv_clamp") is None else float(kw["conv_clamp"]),
        mbstd_group_size=int(epilogue.get("mbstd_group_size", 4)),
        mbstd_num_channels=int(epilogue.get("mbstd_num_channels", 1)),
        mapping_layers=int(dict(kw.get("mapping_kwargs") or {}).get("num_layers", 8)),
    )
    if kw.get("cmap_dim") not in (None, cfg.channels(4)):
        raise ValueError(f"unsupported discriminator cmap_dim {kw['cmap_dim']} (only {cfg.channels(4)})")
    freeze = int(dict(kw.get("block_kwargs") or {}).get("freeze_layers", 0))
    D = Discriminator(cfg, freeze_layers=freeze)
    _load_strict(D, state)
    D.source_format, D.source_notes = describe_source(rec)
    return D
