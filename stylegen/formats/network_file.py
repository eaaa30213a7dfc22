"""Every network of one network file, whatever its format: what `convert`, `info` and
`train --resume` read.

`stylegen.load_network(path, which)` loads one network of any format it knows (it detects the
format from the file); this module asks it for each of 'G_ema', 'G' and 'D' and keeps what
loads, and why the others did not. Our own snapshots are read once (`load_snapshot`) so their
`training` and `extra` records come along. Nothing from the file is executed: every read goes
through the loaders' restricted unpicklers.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stylegen.formats.snapshot import NETWORKS, NetworkLoadError, load_network, load_snapshot, network_from_snapshot


@dataclass
class NetworkFile:
    """The networks of one file: those that loaded, and a one-line reason for each that did not."""

    path: Path
    networks: dict[str, torch.nn.Module]  # 'G_ema' / 'G' / 'D' -> network (eval, frozen, CPU)
    problems: dict[str, str] = field(default_factory=dict)  # present but not loadable here: why
    absent: list[str] = field(default_factory=list)  # networks the file does not have
    snapshot: dict | None = None  # our snapshot's container (training, extra), else None
    source_format: str = "unknown"  # one line, e.g. 'stylegen v1', 'NVIDIA pickle (...)'
    source_notes: list[str] = field(default_factory=list)  # one-line notes of the loader(s)

    @property
    def G_ema(self) -> torch.nn.Module | None:
        return self.networks.get("G_ema")

    @property
    def G(self) -> torch.nn.Module | None:
        return self.networks.get("G")

    @property
    def D(self) -> torch.nn.Module | None:
        return self.networks.get("D")


def read_network_file(path: str | Path) -> NetworkFile:
    """Load every network of `path` (any format `load_network` reads).

    A missing or unloadable G or D is recorded (`absent` / `problems`), not raised; at least one
    generator (G_ema or G) must load, else the loader's NetworkLoadError for G_ema is raised.
    """
    path = Path(path)
    snapshot = _our_snapshot(path)
    out = NetworkFile(path, {}, snapshot=snapshot)
    first_error: NetworkLoadError | None = None
    for which in ("G_ema", "G", "D"):
        try:
            net = _load_one(path, which, snapshot)
        except NetworkLoadError as e:
            if which == "G_ema" and not _names_network(e, which):
                raise  # the file itself is unreadable or refused: no use trying G and D
            first_error = first_error or e
            if _is_absent(e, which, snapshot):
                out.absent.append(which)
            else:
                out.problems[which] = e.problem
            continue
        out.networks[which] = net
    if out.G_ema is None and out.G is None:
        assert first_error is not None
        raise first_error
    _collect_source(out)
    return out


def _our_snapshot(path: Path) -> dict | None:
    """Our snapshot's container, or None for a file of another format (or not ours at all)."""
    if not path.is_file() or not _looks_like_ours(path):
        return None
    try:
        return load_snapshot(path)
    except NetworkLoadError:
        return None  # another torch zip (e.g. a rosinality checkpoint): load_network decides


def _looks_like_ours(path: Path) -> bool:
    """A torch zip whose pickle starts with our {'format': 'stylegen', ...} (cheap: no tensors read).

    Saves reading a large foreign torch zip (a rosinality checkpoint) twice; a file this misses
    still loads through `load_network`, only without its training and extra records.
    """
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return False
            with z.open(name) as f:
                return b"stylegen" in f.read(256)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError):
        return False


def _load_one(path: Path, which: str, snapshot: dict | None) -> torch.nn.Module:
    if snapshot is None:
        return load_network(path, which)
    return network_from_snapshot(snapshot, which, path).eval().requires_grad_(False)


def _is_absent(e: NetworkLoadError, which: str, snapshot: dict | None) -> bool:
    """Whether the error says the file has no such network (rather than one we cannot rebuild)."""
    if snapshot is not None:
        return snapshot.get(which) is None
    text = e.problem.lower()
    return ("has no" in text or "no such network" in text) and f"'{which.lower()}'" in text


def _names_network(e: NetworkLoadError, which: str) -> bool:
    """Whether the error is about that one network (absent, or not rebuildable), not the file."""
    return f"'{which.lower()}'" in e.problem.lower()


def _collect_source(out: NetworkFile) -> None:
    """source_format and source_notes from the loaded networks (set by every loader)."""
    notes: dict[str, None] = {}  # insertion-ordered set: the same note from G and G_ema once
    for which in NETWORKS:
        net = out.networks.get(which)
        if net is None:
            continue
        fmt = getattr(net, "source_format", None)
        if fmt and out.source_format == "unknown":
            out.source_format = str(fmt)
        notes.update(dict.fromkeys(str(n) for n in getattr(net, "source_notes", None) or ()))
    if out.source_format == "unknown" and out.snapshot is not None:
        out.source_format = f"stylegen v{out.snapshot.get('version', '?')}"
    out.source_notes = list(notes)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
