"""Network snapshots: our format (config dicts + state dicts, `torch.save`) and NVIDIA's pickles.

Loading never runs code from the file and never changes anything outside the objects it builds:
ours are read with `torch.load(weights_only=True)`, NVIDIA's with the restricted unpickler of
`stylegen.formats.nvidia_pickle`. Both formats are described in docs/formats.md.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from stylegen.errors import StylegenError
from stylegen.formats.atomic import atomic_path
from stylegen.formats.guarded_unpickler import describe_weights_only_error
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig

FORMAT = "stylegen"
VERSION = 1
NETWORKS = ("G", "G_ema", "D")


class NetworkLoadError(StylegenError, ValueError):
    """A network file cannot be loaded; the message is one line naming the file and the problem."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


def _entry(net: torch.nn.Module) -> dict:
    config = getattr(net, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise TypeError(f"save_network: {type(net).__name__} has no .config with to_dict()")
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return {"config": config.to_dict(), "state": state}


def save_network(
    path,
    G: torch.nn.Module | None = None,
    G_ema: torch.nn.Module | None = None,
    D: torch.nn.Module | None = None,
    training: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Write a snapshot atomically (temp file in the same directory, fsync, rename).

    G / G_ema / D: networks with a `.config` (stored as config dict + state dict). training:
    optimizer states, counters, RNG states (tensors and plain data only). extra: more plain data
    stored under 'extra'. The old file at `path`, if any, stays intact if writing fails.
    """
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    for name, net in (("G", G), ("G_ema", G_ema), ("D", D)):
        if net is not None:
            data[name] = _entry(net)
    if training is not None:
        data["training"] = training
    if extra is not None:
        data["extra"] = extra
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
        torch.save(data, f)


def _kind(path: Path) -> str:
    """'zip' (torch.save), 'pickle' (NVIDIA) from the first bytes; NetworkLoadError otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise NetworkLoadError(path, "no such file") from None
    except OSError as e:
        raise NetworkLoadError(path, f"cannot read: {e.strerror or e}") from None
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if not head:
        raise NetworkLoadError(path, "empty file")
    raise NetworkLoadError(path, "not a network file (neither a torch zip nor a pickle)")


def load_snapshot(path) -> dict:
    """The raw container of one of our snapshots (for resuming training); NetworkLoadError if not."""
    path = Path(path)
    if _kind(path) != "zip":
        raise NetworkLoadError(path, "not a stylegen snapshot (a plain pickle; NVIDIA pickles: use load_network)")
    if not zipfile.is_zipfile(path):
        raise NetworkLoadError(path, "truncated or corrupt torch file (its zip directory is missing)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):  # torch refused a global: say which, in one line
            raise NetworkLoadError(path, describe_weights_only_error(e)) from None
        raise NetworkLoadError(path, f"corrupt or truncated torch file ({_first_line(e)})") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as e:
        raise NetworkLoadError(path, f"corrupt or truncated torch file ({_first_line(e)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NetworkLoadError(path, f"not a stylegen snapshot (got {_describe(data)})")
    if data.get("version") != VERSION:
        raise NetworkLoadError(path, f"snapshot format version {data.get('version')!r} is not supported (need 1)")
    return data


def load_network(path, which: str = "G_ema") -> Generator | Discriminator:
    """Load one network ('G_ema', 'G' or 'D') of our snapshot or an NVIDIA pickle.

    Returns it in eval mode with requires_grad False, on the CPU. Every failure raises
    NetworkLoadError with one line naming the file and the problem. torch's random state is
    left as it was (the modules' initialisation draws from it before the file's weights replace
    it), so `torch.manual_seed(s)`, then a load, then `torch.randn` gives the same z as without it.
    """
    path = Path(path)
    if which not in NETWORKS:
        raise NetworkLoadError(path, f"which={which!r} must be one of {', '.join(NETWORKS)}")
    with torch.random.fork_rng(devices=[]):
        G = _load_ours(path, which) if _kind(path) == "zip" else _load_nvidia(path, which)
    G.eval().requires_grad_(False)
    return G


def _load_ours(path: Path, which: str) -> Generator | Discriminator:
    from stylegen.formats import rosinality  # hook: rosinality/stylegan2-pytorch .pt (a torch zip too)

    if rosinality.is_rosinality_zip(path):  # its pickle holds g_ema/g/d state dicts, no 'format'
        return rosinality.load_rosinality(path, which)
    return network_from_snapshot(load_snapshot(path), which, path)


def network_from_snapshot(data: dict, which: str, path) -> Generator | Discriminator:
    """Rebuild one network of an already loaded snapshot container (see `load_snapshot`); torch's
    random state is left as it was, as by `load_network`."""
    with torch.random.fork_rng(devices=[]):
        return _network_from_snapshot(data, which, path)


def _network_from_snapshot(data: dict, which: str, path) -> Generator | Discriminator:
    entry = data.get(which)
    if entry is None:
        have = [k for k in NETWORKS if k in data]
        raise NetworkLoadError(path, f"snapshot has no '{which}' network (has: {', '.join(have) or 'none'})")
    try:
        if which == "D":
            net = Discriminator(DiscriminatorConfig.from_dict(entry["config"]))
        elif "layers" in entry["config"]:  # a StyleGAN3 generator (per-layer specs)
            from stylegen.networks.sg3_generator import Generator3, Generator3Config

            net = Generator3(Generator3Config.from_dict(entry["config"]))
        else:
            net = Generator(GeneratorConfig.from_dict(entry["config"]))
        net.load_state_dict(entry["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise NetworkLoadError(path, f"'{which}' cannot be rebuilt: {_first_line(e)}") from None
    net.source_format = f"{FORMAT} v{data.get('version', '?')}"
    net.source_notes = []
    extra = data.get("extra")
    source = extra.get("source") if isinstance(extra, dict) else None
    if isinstance(source, dict):  # written by `stylegen convert`: where the weights came from
        net.source_notes.append(f"converted from {source.get('file', '?')} ({source.get('format', '?')})")
        notes = source.get("notes")
        net.source_notes += [n for n in notes if isinstance(n, str)] if isinstance(notes, list) else []
    return net


def _load_nvidia(path: Path, which: str) -> Generator | Discriminator:
    from stylegen.formats import rosinality  # hook: legacy (torch < 1.6) torch.save files start with \x80 too

    if rosinality.is_legacy_torch(path):  # e.g. rosinality convert_weight.py files (docs/formats.md)
        return rosinality.load_rosinality(path, which)
    from stylegen.formats import nvidia

    try:
        with open(path, "rb") as f:
            data = nvidia.read_records(f)
    except nvidia.Refused as e:  # the file asks for something a network file never needs
        if getattr(e, "global_name", None) == ("dnnlib.tflib.network", "Network"):  # a legacy TF pickle
            from stylegen.formats.tf_networks import load_tf_network

            return load_tf_network(path, which)
        raise NetworkLoadError(path, str(e) if str(e).startswith("refused") else f"refused: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise NetworkLoadError(path, f"corrupt or truncated pickle ({type(e).__name__}: {_first_line(e)})") from None
    except (IndexError, KeyError, MemoryError, OverflowError) as e:
        raise NetworkLoadError(path, f"corrupt pickle ({type(e).__name__})") from None
    if isinstance(data, nvidia.Record):
        data = {"G_ema": data}  # a bare network object
    if not isinstance(data, dict) or not any(isinstance(data.get(k), nvidia.Record) for k in NETWORKS):
        raise NetworkLoadError(path, f"not a network pickle (got {_describe(data)})")
    rec = data.get(which)
    if not isinstance(rec, nvidia.Record):
        have = [k for k in NETWORKS if isinstance(data.get(k), nvidia.Record)]
        raise NetworkLoadError(path, f"pickle has no '{which}' network (has: {', '.join(have)})")
    try:
        if which == "D":
            return nvidia.discriminator_from_record(rec)
        return nvidia.generator_from_record(rec)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise NetworkLoadError(path, f"'{which}' cannot be rebuilt: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    """The exception's message on one line, shortened."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {', '.join(map(str, list(obj)[:6]))}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"
