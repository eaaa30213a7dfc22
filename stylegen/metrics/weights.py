"""Pretrained weight files (VGG16, Inception-v3, ...): found on disk, never downloaded.

A network's weights are looked up, in order, at the path the user gave (a command-line option),
at the path in its environment variable, and in the torch hub cache
(`$TORCH_HOME/hub/checkpoints/<file name>`, where torchvision and pytorch-fid put their
downloads). When none exists, `MissingWeightsError` says in one line which file is needed,
where to put it and where it comes from. Nothing here opens a network connection: files are read
with `torch.load(weights_only=True)` (plain tensors only, no code runs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch


class MissingWeightsError(ValueError):
    """Pretrained weights that are not on this machine; the message is one actionable line."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where a pretrained weight file is looked for, and where a person can get it."""

    what: str  # human name, e.g. "VGG16 ImageNet weights (torchvision)"
    filename: str  # file name in the torch hub cache, e.g. "vgg16-397923af.pth"
    env: str  # environment variable holding a path, e.g. "STYLEGEN_VGG16"
    option: str  # command-line option taking a path, e.g. "--vgg"
    source: str  # where the file comes from (URL or package)
    size: str  # approximate size, to set expectations, e.g. "528 MB"


def hub_checkpoint_path(filename: str) -> Path:
    """`$TORCH_HOME/hub/checkpoints/<filename>` (torch.hub.get_dir() honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def find_weights(spec: WeightsSpec, path: str | os.PathLike | None = None, alternative: str = "") -> Path:
    """The weight file for `spec`: `path`, else $spec.env, else the hub cache; else raise.

    A path given explicitly (argument or environment variable) must exist: a typo is reported
    rather than silently falling through to another file. `alternative` is appended to the error
    (e.g. "or pass --distance offline").
    """
    for given, how in ((path, spec.option), (os.environ.get(spec.env) or None, f"${spec.env}")):
        if given is not None:
            p = Path(given).expanduser()
            if not p.is_file():
                raise MissingWeightsError(f"{spec.what}: {how} names {p}, which is not a file")
            return p
    cached = hub_checkpoint_path(spec.filename)
    if cached.is_file():
        return cached
    tail = f"; {alternative}" if alternative else ""
    raise MissingWeightsError(
        f"{spec.what} not found: need {spec.filename} ({spec.size}) at {cached}, or its path in "
        f"{spec.option} PATH or ${spec.env}; get it from {spec.source} (nothing is downloaded){tail}"
    )


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict (tensors only) from `path`, memory-mapped when the file allows it."""
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) torch files cannot be memory-mapped
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refusals and corrupt files raise many types
        first = " ".join(str(e).split())[:200]
        raise ValueError(f"{path}: not a plain state dict for {what} ({type(e).__name__}: {first})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path}: not a plain state dict for {what} (got {type(data).__name__})")
    return data


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime) for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]
