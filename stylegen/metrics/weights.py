"""Pretrained weight files (VGG16, Inception-v3, ...): found on disk, else downloaded once.

A network's weights are looked up, in order, at the path the user gave (a command-line option),
at the path in its environment variable, and in the torch hub cache
(`$TORCH_HOME/hub/checkpoints/<file name>`, where torchvision and pytorch-fid put theirs, under
the same names). A file missing from the cache is downloaded there with a progress bar
(`torch.hub.download_url_to_file`: sha256 prefix checked, a partial file never left behind).
Offline, the server is given `CONNECT_TIMEOUT_S` seconds to answer, then `MissingWeightsError`
says in one line which file is needed, where to put it and where it comes from. Files are read
with `torch.load(weights_only=True)` (plain tensors only, no code runs).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegen.errors import InputError, StylegenError

CONNECT_TIMEOUT_S = 5.0  # offline: the longest wait before MissingWeightsError
STALL_TIMEOUT_S = 60.0  # a download that receives nothing for this long fails instead of hanging


class MissingWeightsError(StylegenError, ValueError):
    """Pretrained weights that are not on this machine; the message is one actionable line."""


class WeightsFileError(InputError):
    """A weight file that is not the network it should be (wrong layout, not a state dict)."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where a pretrained weight file is looked for, downloaded from, and checked against."""

    what: str  # human name, e.g. "VGG16 ImageNet weights (torchvision)"
    filename: str  # file name in the torch hub cache, e.g. "vgg16-397923af.pth"
    env: str  # environment variable holding a path, e.g. "STYLEGEN_VGG16"
    option: str  # command-line option taking a path, e.g. "--vgg"
    url: str  # where the file is downloaded from
    size: str  # approximate size, to set expectations, e.g. "528 MB"
    sha256_prefix: str | None = None  # a download's sha256 must start with this (torch.hub's rule)


def hub_checkpoint_path(filename: str) -> Path:
    """`$TORCH_HOME/hub/checkpoints/<filename>` (torch.hub.get_dir() honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def find_weights(spec: WeightsSpec, path: str | os.PathLike | None = None, alternative: str = "") -> Path:
    """The weight file for `spec`: `path`, else $spec.env, else the hub cache, else downloaded.

    A path given explicitly (argument or environment variable) must exist: a typo is reported
    rather than silently falling through to another file. When the download fails (offline:
    within about CONNECT_TIMEOUT_S seconds), MissingWeightsError ends with `alternative`
    (e.g. "or use --distance offline").
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
    problem = download(spec, cached)
    if problem is None:
        return cached
    tail = f"; {alternative}" if alternative else ""
    raise MissingWeightsError(
        f"{spec.what} not found: need {spec.filename} ({spec.size}) at {cached}, or its path in "
        f"{spec.option} PATH or ${spec.env}; downloading it from {spec.url} failed ({problem}){tail}"
    )


def download(spec: WeightsSpec, dst: Path) -> str | None:
    """Download `spec.url` to `dst` with a progress bar on stderr; None, or why it failed."""
    problem = _unreachable(spec.url, CONNECT_TIMEOUT_S)
    if problem is not None:
        return problem  # nothing printed: offline, the error line is the only output
    print(f"Downloading {spec.what} ({spec.size}) from {spec.url} to {dst}", file=sys.stderr)
    before = socket.getdefaulttimeout()
    # download_url_to_file takes no timeout; sockets it opens inherit this one, so a stalled
    # transfer raises instead of hanging. Restored at once: the process default is global.
    socket.setdefaulttimeout(STALL_TIMEOUT_S)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(spec.url, str(dst), hash_prefix=spec.sha256_prefix, progress=True)
    except RuntimeError as e:  # torch.hub's hash check; the bad file is already removed
        return f"sha256 check: {_one_line(e)}"
    except (OSError, ValueError) as e:  # URLError/HTTPError, timeouts, a cache we may not write
        return _one_line(e)
    finally:
        socket.setdefaulttimeout(before)
    return None


def _unreachable(url: str, timeout: float) -> str | None:
    """None if the server behind `url` answers within `timeout` seconds, else the reason.

    The probe runs in a daemon thread: urlopen's timeout covers connecting and reading but not
    the DNS lookup, which can hang far longer on a machine without a network.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "torch.hub"})
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
            outcome.append(None)
        except urllib.error.HTTPError:  # the server answered (some refuse HEAD); the GET decides
            outcome.append(None)
        except (OSError, ValueError) as e:  # URLError, refused connections, timeouts, bad URLs
            outcome.append(_one_line(getattr(e, "reason", None) or e))

    thread = threading.Thread(target=probe, name="stylegen-weights-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _one_line(e: object) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict (tensors only) from `path`, memory-mapped when the file allows it."""
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) torch files cannot be memory-mapped
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refusals and corrupt files raise many types
        raise WeightsFileError(
            f"{path}: not a plain state dict for {what} ({type(e).__name__}: {_one_line(e)})"
        ) from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsFileError(f"{path}: not a plain state dict for {what} (got {type(data).__name__})")
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
