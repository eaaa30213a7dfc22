"""rosinality/stylegan2-pytorch `.pt` checkpoints: read without running anything, and written.

Reading (`load_rosinality`, reached through `stylegen.load_network`): both layouts, train.py's
`{'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'}` (a torch zip, storages often
tagged `cuda:0`) and convert_weight.py's `{'g_ema', 'latent_avg'}` (often the legacy pre-1.6
serialization), through the restricted unpickler of `rosinality_pickle`; `args` and the
optimizer states come out as plain data. The architecture is read from the tensor shapes
(`rosinality_names`), `args` only checked against it. Writing (`save_rosinality`): our networks
as a train.py-compatible checkpoint that rosinality's own code loads. docs/formats.md has the facts.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegen.errors import InputError, StylegenWarning
from stylegen.formats import rosinality_names as names
from stylegen.formats.atomic import atomic_path
from stylegen.formats.rosinality_pickle import Checkpoint, Refused, is_legacy_torch, read_checkpoint
from stylegen.formats.snapshot import NetworkLoadError
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig

__all__ = ["is_legacy_torch", "is_rosinality_zip", "load_rosinality", "save_rosinality", "estimate_w_avg"]

#: Our network names -> the checkpoint's keys.
NETWORK_KEYS = {"G_ema": "g_ema", "G": "g", "D": "d"}
#: rosinality's mapping learning-rate multiplier (`lr_mlp`), fixed by its train.py; not stored.
LR_MLP = 0.01
#: w_avg of a network without latent_avg: the mean of this many mapped z drawn from this seed
#: (rosinality's generate.py: `mean_latent(4096)`, the same mean over unseeded z).
W_AVG_SAMPLES, W_AVG_SEED = 4096, 0


class RosinalityWarning(StylegenWarning):
    """A loaded rosinality network differs from what the file alone defines (e.g. an estimated w_avg)."""


def is_rosinality_zip(path: str | Path) -> bool:
    """Whether a torch zip holds a rosinality checkpoint (a dict with g_ema, g or d state dicts
    and no 'format' key). Reads only its pickle (tensors on the 'meta' device); a file our
    reader refuses or cannot parse is not one here, and the snapshot loader judges it."""
    try:
        data = read_checkpoint(path, meta=True).data
    except (Refused, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, NotImplementedError, ValueError):
        return False
    except (RuntimeError, OSError, MemoryError, OverflowError):
        return False
    return _looks_like(data)


def _looks_like(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and "format" not in data
        and any(isinstance(data.get(k), dict) for k in NETWORK_KEYS.values())
    )


def _read(path: Path) -> Checkpoint:
    try:
        return read_checkpoint(path)
    except Refused as e:  # the file asks for something a checkpoint never needs
        raise NetworkLoadError(path, str(e) if str(e).startswith("refused") else f"refused: {e}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, NotImplementedError, ValueError, RuntimeError) as e:
        raise NetworkLoadError(
            path, f"corrupt or truncated torch file ({type(e).__name__}: {_first_line(e)})"
        ) from None
    except (MemoryError, OverflowError) as e:
        raise NetworkLoadError(path, f"corrupt torch file ({type(e).__name__})") from None


def load_rosinality(path: str | Path, which: str = "G_ema") -> Generator | Discriminator:
    """One network ('G_ema' = g_ema, 'G' = g, 'D' = d) of a rosinality checkpoint, on the CPU.

    Sets `source_format` (one line) and `source_notes` (one-line notes) on the network. Every
    failure raises NetworkLoadError, one line naming the file.
    """
    path = Path(path)
    if which not in NETWORK_KEYS:
        raise NetworkLoadError(path, f"which={which!r} must be one of {', '.join(NETWORK_KEYS)}")
    ckpt = _read(path)
    data = ckpt.data
    if not _looks_like(data):
        raise NetworkLoadError(path, f"not a network file (a torch file holding {_describe(data)})")
    layout = _layout(data)
    args = data.get("args") if isinstance(data.get("args"), dict) else {}
    _refuse_swagan(path, data, args)
    state = data.get(NETWORK_KEYS[which])
    if state is None:
        have = ", ".join(k for k, v in NETWORK_KEYS.items() if v in data) or "none"
        raise NetworkLoadError(path, f"rosinality checkpoint ({layout} layout) has no '{which}' network (has: {have})")
    _check_state_dict(path, which, state)
    try:
        if which == "D":
            net, arch_text, notes = _discriminator(state, args)
        else:
            net, arch_text, notes = _generator(path, data, which, state, args, layout)
    except ValueError as e:
        verb = "does not match our Discriminator" if which == "D" else "cannot be rebuilt"
        raise NetworkLoadError(path, f"'{which}' ({NETWORK_KEYS[which]}) {verb}: {_first_line(e)}") from None
    foreign = sorted(loc for loc in ckpt.locations if loc != "cpu")
    if foreign:
        notes.append(f"storages saved on {', '.join(foreign)}, read onto the CPU")
    net.source_format = (
        f"rosinality/stylegan2-pytorch checkpoint ({layout} layout, {arch_text}), read without executing code"
    )
    net.source_notes = notes
    return net


def _layout(data: dict) -> str:
    if {"args", "g_optim", "d_optim"} & set(data):
        return "train.py"
    return "convert_weight.py" if "latent_avg" in data else "state-dict"


def _refuse_swagan(path: Path, data: dict, args: dict) -> None:
    nets = [v for k, v in data.items() if k in NETWORK_KEYS.values() and isinstance(v, dict)]
    if args.get("arch") == "swagan" or any(names.is_swagan(s) for s in nets):
        raise NetworkLoadError(
            path, "a SWAGAN checkpoint (rosinality's train.py --arch swagan, wavelet generator): not supported"
        )


def _check_state_dict(path: Path, which: str, state: Any) -> None:
    ok = isinstance(state, dict) and all(
        type(k) is str and isinstance(v, torch.Tensor) and v.is_floating_point() for k, v in state.items()
    )
    if not ok:
        raise NetworkLoadError(path, f"'{which}' ({NETWORK_KEYS[which]}) is not a state dict of float tensors")


def _prefer(args: dict) -> tuple[int, ...]:
    """channel_base values to prefer when the tensors allow several (512 channels throughout)."""
    cm = args.get("channel_multiplier")
    return ((16384 * cm,) if type(cm) is int and cm in (1, 2) else ()) + (32768, 16384)


def _base_and_max(channels: dict[int, int], args: dict) -> tuple[int, int]:
    found = names.base_and_max(channels, _prefer(args))
    if found is None:
        raise ValueError(
            f"its channel table {names.describe_channels(channels)} is not min(channel_base // r, channel_max) "
            "for any channel_base and channel_max (rosinality's channel_multiplier >= 3 is not supported)"
        )
    return found


def _load_checked(net: torch.nn.Module, ours: dict[str, torch.Tensor]) -> None:
    """Load ours into net; the names ours lacks may only be buffers with no rosinality counterpart."""
    full = net.state_dict()
    unknown = sorted(set(ours) - set(full))
    derived = [k for k in full if k not in ours and not (k.endswith("resample_filter") or k == "mapping.w_avg")]
    if unknown or derived:
        raise ValueError(f"name table mismatch: {', '.join((unknown + derived)[:4])}")  # a bug in rosinality_names
    net.load_state_dict({**full, **ours})


def _generator(path: Path, data: dict, which: str, state: dict, args: dict, layout: str):
    arch = names.infer_generator(state, NETWORK_KEYS[which])
    base, cmax = _base_and_max(arch.channels, args)
    cfg = GeneratorConfig(
        z_dim=arch.style_dim,
        c_dim=0,
        w_dim=arch.style_dim,
        img_resolution=arch.size,
        img_channels=arch.img_channels,
        mapping_layers=arch.n_mlp,
        mapping_lr_multiplier=LR_MLP,
        channel_base=base,
        channel_max=cmax,
        resample_filter=arch.resample_filter,
    )
    G = Generator(cfg).eval()
    _load_checked(G, names.to_ours(state, names.generator_pairs(arch)))
    notes = _args_notes(args, arch)
    latent_avg = data.get("latent_avg")
    if which == "G_ema" and latent_avg is not None:
        G.mapping.w_avg.copy_(_latent_avg(path, latent_avg, arch.style_dim))
    else:
        G.mapping.w_avg.copy_(estimate_w_avg(G))
        whose = "latent_avg is g_ema's" if latent_avg is not None else f"latent_avg absent ({layout} layout)"
        note = (
            f"{whose}: w_avg estimated as the mean of {W_AVG_SAMPLES} mapped z (numpy RandomState({W_AVG_SEED})), "
            "as rosinality's generate.py does with unseeded z"
        )
        notes.insert(0, note)
        warnings.warn(f"{path}: {note}", RosinalityWarning, stacklevel=5)
    return G, _describe_generator(arch, args), notes


def _latent_avg(path: Path, t: Any, style_dim: int) -> torch.Tensor:
    if (
        not isinstance(t, torch.Tensor)
        or not t.is_floating_point()
        or tuple(t.shape) not in ((style_dim,), (1, style_dim))
    ):
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise NetworkLoadError(
            path, f"latent_avg is {shape}, expected a float tensor [{style_dim}] or [1, {style_dim}]"
        )
    return t.reshape(-1).to(torch.float32)


def _describe_generator(arch: names.GeneratorArch, args: dict) -> str:
    cm = names.channel_multiplier_of(arch.channels)
    if cm == 0:  # 512 throughout: every multiplier gives it; name the one train.py was given
        given = args.get("channel_multiplier")
        channels = f"channel_multiplier {given}" if type(given) is int else "512 channels throughout"
    elif cm is None:
        channels = f"channels {names.describe_channels(arch.channels)}: not rosinality's table"
    else:
        channels = f"channel_multiplier {cm}"
    return f"size {arch.size}, style_dim {arch.style_dim}, n_mlp {arch.n_mlp}, {channels}"


def _args_notes(args: dict, arch: names.GeneratorArch) -> list[str]:
    """One note per `args` value that contradicts the tensors (which win)."""
    notes = []
    for key, value in (("size", arch.size), ("latent", arch.style_dim), ("n_mlp", arch.n_mlp)):
        if key in args and args[key] != value:
            notes.append(f"args.{key} {args[key]!r} disagrees with the tensors ({value}): the tensors win")
    cm = args.get("channel_multiplier")
    if type(cm) is int and cm >= 1 and names.rosinality_channels(arch.size, cm) != arch.channels:
        table = names.describe_channels(names.rosinality_channels(arch.size, cm))
        notes.append(
            f"args.channel_multiplier {cm} gives rosinality's channels {table}, the tensors have "
            f"{names.describe_channels(arch.channels)}: the tensors win"
        )
    return notes


@torch.no_grad()
def estimate_w_avg(G: Generator, samples: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> torch.Tensor:
    """The mean of G's mapping over `samples` z from numpy RandomState(seed) (float64 sum), [w_dim]."""
    z = np.random.RandomState(seed).randn(samples, G.z_dim)
    total = torch.zeros(G.w_dim, dtype=torch.float64)
    for i in range(0, samples, 1000):
        zi = torch.from_numpy(z[i : i + 1000]).to(torch.float32)
        total += G.mapping(zi, None, update_w_avg=False)[:, 0].double().sum(dim=0)
    return (total / samples).to(torch.float32)


def _discriminator(state: dict, args: dict):
    arch = names.infer_discriminator(state)
    base, cmax = _base_and_max(arch.channels, args)
    cfg = DiscriminatorConfig(
        c_dim=0,
        img_resolution=arch.size,
        img_channels=arch.img_channels,
        channel_base=base,
        channel_max=cmax,
        resample_filter=arch.resample_filter,
    )
    D = Discriminator(cfg).eval()
    _load_checked(D, names.to_ours(state, names.discriminator_pairs(arch)))
    text = f"discriminator size {arch.size}, channels {names.describe_channels(arch.channels)}"
    return D, text, []


# ---------------------------------------------------------------------------------------------
# Writing


def save_rosinality(
    path: str | Path,
    G_ema: Generator,
    G: Generator | None = None,
    D: Discriminator | None = None,
) -> list[str]:
    """Write our networks as a rosinality/stylegan2-pytorch checkpoint, atomically.

    Layout: `{'g_ema', 'latent_avg', 'g' (when G is given), 'd' (when D is given)}`, state dicts
    with rosinality's names and plain tensors only (no Namespace): rosinality's Generator /
    Discriminator `load_state_dict` them, its generate.py reads them. Returns one-line notes on
    what rosinality's stock code will not reproduce (e.g. a channel table it does not build).
    Raises InputError for a network rosinality cannot hold (conditional, z_dim != w_dim, not RGB).
    """
    notes: list[str] = []
    data: dict[str, Any] = {"g_ema": _generator_state(G_ema, "G_ema", notes)}
    data["latent_avg"] = G_ema.mapping.w_avg.detach().to(torch.float32).cpu().clone()
    if G is not None:
        data["g"] = _generator_state(G, "G", notes)
    if D is not None:
        data["d"] = _discriminator_state(D, notes)
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
        torch.save(data, f)
    return list(dict.fromkeys(notes))


def _generator_state(G: Generator, which: str, notes: list[str]) -> dict[str, torch.Tensor]:
    cfg = getattr(G, "config", None)
    if not isinstance(cfg, GeneratorConfig):
        raise InputError(f"save_rosinality: {which} is a {type(G).__name__}, not a stylegen Generator")
    if cfg.c_dim or cfg.z_dim != cfg.w_dim or cfg.img_channels != 3:
        raise InputError(
            f"save_rosinality: {which} (c_dim {cfg.c_dim}, z_dim {cfg.z_dim}, w_dim {cfg.w_dim}, "
            f"img_channels {cfg.img_channels}) does not fit rosinality's Generator (unconditional, "
            "one style_dim for z and w, RGB)"
        )
    if cfg.architecture != "skip":
        raise InputError(
            f"save_rosinality: {which} has architecture {cfg.architecture!r}; rosinality's Generator is 'skip'"
        )
    channels = {r: min(cfg.channel_base // r, cfg.channel_max) for r in _resolutions(cfg.img_resolution)}
    arch = names.GeneratorArch(
        cfg.img_resolution, cfg.w_dim, cfg.mapping_layers, 3, channels, tuple(cfg.resample_filter)
    )
    state = names.from_ours(G.state_dict(), names.generator_pairs(arch))
    if cfg.mapping_lr_multiplier != LR_MLP:  # rosinality's EqualLinear uses lr_mlp 0.01: same product
        scale = cfg.mapping_lr_multiplier / LR_MLP
        for i in range(1, cfg.mapping_layers + 1):
            state[f"style.{i}.weight"] *= scale
            state[f"style.{i}.bias"] *= scale
        notes.append(
            f"{which}: mapping weights rescaled from lr_multiplier {cfg.mapping_lr_multiplier} to rosinality's 0.01"
        )
    notes += _fit_notes(channels, cfg.resample_filter, cfg.conv_clamp)
    return state


def _discriminator_state(D: Discriminator, notes: list[str]) -> dict[str, torch.Tensor]:
    cfg = getattr(D, "config", None)
    if not isinstance(cfg, DiscriminatorConfig):
        raise InputError(f"save_rosinality: D is a {type(D).__name__}, not a stylegen Discriminator")
    if cfg.c_dim or cfg.img_channels != 3 or (cfg.mbstd_group_size, cfg.mbstd_num_channels) != (4, 1):
        raise InputError(
            f"save_rosinality: D (c_dim {cfg.c_dim}, img_channels {cfg.img_channels}, minibatch std "
            f"group {cfg.mbstd_group_size} x {cfg.mbstd_num_channels}) does not fit rosinality's "
            "Discriminator (unconditional, RGB, group 4 x 1)"
        )
    channels = {r: cfg.channels(r) for r in _resolutions(cfg.img_resolution)}
    arch = names.DiscriminatorArch(cfg.img_resolution, 3, channels, tuple(cfg.resample_filter))
    notes += _fit_notes(channels, cfg.resample_filter, cfg.conv_clamp)
    return names.from_ours(D.state_dict(), names.discriminator_pairs(arch))


def _resolutions(size: int) -> list[int]:
    return [2**i for i in range(2, size.bit_length())]


def _fit_notes(channels: dict[int, int], resample_filter: tuple, conv_clamp: float | None) -> list[str]:
    notes = []
    if names.channel_multiplier_of(channels) is None:
        notes.append(
            f"channels {names.describe_channels(channels)} are not rosinality's table for any "
            "channel_multiplier: build its networks with this table to load the file"
        )
    if tuple(resample_filter) != (1, 3, 3, 1):
        notes.append(f"pass blur_kernel={list(resample_filter)} to rosinality's networks")
    if conv_clamp is not None:
        notes.append(f"conv_clamp {conv_clamp} not kept: rosinality's layers do not clamp")
    return notes


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {', '.join(map(str, list(obj)[:6]))}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"
