"""The build arguments (`static_kwargs`) of a TF network -> our GeneratorConfig / DiscriminatorConfig.

Every key is accounted for (docs/formats.md, "Legacy TensorFlow pickles"): a key we honour becomes
a config field; a harmless key (no effect on the weights or on the float32 images) is accepted
and reported in the notes; a key that would change the network is honoured or refused by name;
an unknown key is refused by name.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from stylegen.networks.discriminator import DiscriminatorConfig
from stylegen.networks.generator import ARCHITECTURES, GeneratorConfig

#: Keys with no effect on the parameters or on the images we reproduce: accepted, noted.
HARMLESS = {
    "truncation_psi": "TF's default truncation for Gs.run; sampling passes truncation explicitly",
    "truncation_cutoff": "TF's default truncation for Gs.run; sampling passes truncation explicitly",
    "truncation_psi_val": "truncation of TF's validation runs",
    "truncation_cutoff_val": "truncation of TF's validation runs",
    "style_mixing_prob": "training only",
    "dlatent_avg_beta": "training only (w_avg tracking)",
    "structure": "progressive-growing mode of the older code",
    "randomize_noise": "TF's run-time noise choice; noise_mode 'const' = randomize_noise False",
    "num_fp16_res": "compute precision only: runs in float32",
    "dtype": "compute precision only: runs in float32",
    "fused_modconv": "implementation choice of the same arithmetic",
}
#: Keys that change the network, with the one value we implement (None = the key's default).
_FIXED_G = {
    "mapping_nonlinearity": ("lrelu",),
    "nonlinearity": ("lrelu",),
    "use_noise": (True,),
    "normalize_latents": (True,),
    "fmap_decay": (1, 1.0),
    "mapping_func": ("G_mapping",),
    "synthesis_func": ("G_synthesis_stylegan2", "G_synthesis"),
}
_FIXED_D = {"nonlinearity": ("lrelu",), "fmap_decay": (1, 1.0)}
_G_HONOURED = {
    "latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers",
    "mapping_fmaps", "label_fmaps", "mapping_lrmul", "w_avg_beta", "fmap_base", "fmap_max", "fmap_min",
    "conv_clamp", "architecture", "resample_kernel", "dlatent_broadcast",
}  # fmt: skip
_D_HONOURED = {
    "label_size", "resolution", "num_channels", "fmap_base", "fmap_max", "fmap_min", "architecture",
    "mbstd_group_size", "mbstd_num_features", "resample_kernel", "conv_clamp", "freeze_layers",
    "mapping_layers", "mapping_fmaps", "mapping_lrmul",
}  # fmt: skip


def generator_config(kw: dict) -> tuple[GeneratorConfig, list[str]]:
    """GeneratorConfig of a G / Gs network's static_kwargs, and one-line notes; ValueError if unsupported."""
    notes = _check_keys(kw, _G_HONOURED, _FIXED_G, "generator")
    arch = kw.get("architecture", "skip")
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"generator architecture {_short(arch)} (static_kwargs architecture) is not one of {known}")
    w_dim = _int(kw, "dlatent_size", 512, 1)
    res = _int(kw, "resolution", 1024, 4)
    if res & (res - 1):
        raise ValueError(f"static_kwargs resolution={res} is not a power of two")
    if kw.get("label_fmaps") not in (None, w_dim):
        raise ValueError(f"static_kwargs label_fmaps={kw['label_fmaps']!r} is not supported (labels embed into w_dim)")
    num_ws = 2 * int(math.log2(res)) - 2
    if kw.get("dlatent_broadcast") not in (None, num_ws):
        raise ValueError(f"static_kwargs dlatent_broadcast={kw['dlatent_broadcast']!r} (the network has {num_ws} ws)")
    beta = kw.get("w_avg_beta", 0.995)
    base, cmax = _channels(kw, res)
    cfg = GeneratorConfig(
        z_dim=_int(kw, "latent_size", 512, 0),
        c_dim=_int(kw, "label_size", 0, 0),
        w_dim=w_dim,
        img_resolution=res,
        img_channels=_int(kw, "num_channels", 3, 1),
        mapping_layers=_int(kw, "mapping_layers", 8, 1),
        mapping_lr_multiplier=_float(kw, "mapping_lrmul", 0.01),
        w_avg_beta=1.0 if beta is None else _float(kw, "w_avg_beta", 0.995),
        channel_base=base,
        channel_max=cmax,
        conv_clamp=_clamp(kw),
        resample_filter=_kernel(kw),
        architecture=arch,
    )
    return cfg, notes


def discriminator_config(kw: dict) -> tuple[DiscriminatorConfig, int, list[str]]:
    """(DiscriminatorConfig, freeze_layers, notes) of a D network's static_kwargs; ValueError if unsupported."""
    notes = _check_keys(kw, _D_HONOURED, _FIXED_D, "discriminator")
    arch = kw.get("architecture", "resnet")
    if arch != "resnet":
        raise ValueError(
            f"discriminator architecture {arch!r} (static_kwargs architecture) is not supported (only 'resnet')"
        )
    res = _int(kw, "resolution", 1024, 8)
    if res & (res - 1):
        raise ValueError(f"static_kwargs resolution={res} is not a power of two")
    mapping_layers = _int(kw, "mapping_layers", 0, 0)
    if mapping_layers and _float(kw, "mapping_lrmul", 0.1) != 0.01:
        raise ValueError(
            f"static_kwargs mapping_lrmul={kw.get('mapping_lrmul', 0.1)!r} with mapping_layers={mapping_layers} "
            "is not supported (our label mapping layers use 0.01)"
        )
    group = kw.get("mbstd_group_size", 4)  # TF's default; None = the whole minibatch
    if "mbstd_group_size" not in kw:
        notes.append("mbstd_group_size absent: TF's default 4 (NVIDIA's converter takes the whole batch)")
    base, cmax = _channels(kw, res)
    cfg = DiscriminatorConfig(
        c_dim=_int(kw, "label_size", 0, 0),
        img_resolution=res,
        img_channels=_int(kw, "num_channels", 3, 1),
        channel_base=base,
        channel_max=cmax,
        conv_clamp=_clamp(kw),
        mbstd_group_size=0 if group is None else _int(kw, "mbstd_group_size", 4, 0),
        mbstd_num_channels=_int(kw, "mbstd_num_features", 1, 0),
        mapping_layers=mapping_layers,
        resample_filter=_kernel(kw),
    )
    return cfg, _int(kw, "freeze_layers", 0, 0), notes


def _check_keys(kw: dict, honoured: set, fixed: dict, what: str) -> list[str]:
    """Refuse unknown keys and unsupported values of fixed ones; notes for the harmless keys present."""
    unknown = sorted(set(kw) - honoured - set(fixed) - set(HARMLESS))
    if unknown:
        raise ValueError(f"unknown TensorFlow {what} build argument(s) {', '.join(unknown)} (static_kwargs)")
    for key, allowed in fixed.items():
        if key in kw and not any(_same(kw[key], a) for a in allowed):
            raise ValueError(f"static_kwargs {key}={kw[key]!r} is not supported (only {allowed[0]!r})")
    return [f"static_kwargs {k}={_short(kw[k])} ignored ({why})" for k, why in HARMLESS.items() if k in kw]


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, float):
        return _is_number(value) and value == allowed
    return type(value) is type(allowed) and value == allowed  # True is not 1, 'lrelu' is not None


def _channels(kw: dict, res: int) -> tuple[int, int]:
    """(channel_base, channel_max): TF's nf(stage) = clip(fmap_base / 2**stage, fmap_min, fmap_max)
    at resolution 2**(stage + 1), i.e. min(2 * fmap_base // r, fmap_max) while fmap_min does not bind."""
    base = 2 * _int(kw, "fmap_base", 16384, 1)
    cmax = _int(kw, "fmap_max", 512, 1)
    fmin = _int(kw, "fmap_min", 1, 0)
    if min(base // res, cmax) < max(fmin, 1):
        raise ValueError(
            f"static_kwargs fmap_min={fmin} / fmap_base={base // 2} give {min(base // res, cmax)} channels at "
            f"{res}x{res}: channel counts clipped from below are not supported"
        )
    return base, cmax


def _clamp(kw: dict) -> float | None:
    value = kw.get("conv_clamp")
    return None if value is None else _float(kw, "conv_clamp", 0.0)


def _kernel(kw: dict) -> tuple:
    k = kw.get("resample_kernel", [1, 3, 3, 1])
    if not isinstance(k, (list, tuple)) or not 1 <= len(k) <= 16 or not all(_is_number(t) for t in k):
        raise ValueError(f"static_kwargs resample_kernel={_short(k)} is not supported (only a 1-D list of taps)")
    if sum(float(t) for t in k) == 0:
        raise ValueError(f"static_kwargs resample_kernel={_short(k)} sums to zero")
    return tuple(float(t) for t in k)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _int(kw: dict, key: str, default: int, minimum: int) -> int:
    v = kw.get(key, default)
    integral = isinstance(v, numbers.Integral) or (_is_number(v) and float(v).is_integer())
    if not integral or isinstance(v, bool) or int(v) < minimum:
        raise ValueError(f"static_kwargs {key}={_short(v)} is not an integer >= {minimum}")
    return int(v)


def _float(kw: dict, key: str, default: float) -> float:
    v = kw.get(key, default)
    if not _is_number(v) or not math.isfinite(float(v)):
        raise ValueError(f"static_kwargs {key}={_short(v)} is not a number")
    return float(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
