"""ws files (`.npz`): the intermediate latents of sampled seeds or projected photos (docs/formats.md).

Written by `sample --save-ws` and `project`, read by `mix --coarse/--fine` and the Python API.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from stylegen.errors import WsFileError
from stylegen.formats.atomic import atomic_path


def save_ws_file(
    path,
    ws: torch.Tensor,
    seeds=None,
    *,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    network=None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a ws file (docs/cli.md "ws.npz") atomically: ws float32 [N, num_ws, w_dim], seeds
    int64 [N] (-1: no seed; the default), the truncation and class used (-1 = none), the file
    name and sha256 of the `network` file that made them (when given), and `extra` arrays."""
    from stylegen.metrics.weights import file_sha256

    n = ws.shape[0]
    arrays = {
        "ws": ws.detach().cpu().numpy().astype(np.float32),
        "seeds": np.full([n], -1, dtype=np.int64) if seeds is None else np.asarray(seeds, dtype=np.int64),
        "truncation_psi": np.float32(truncation_psi),
        "truncation_cutoff": np.int64(-1 if truncation_cutoff is None else truncation_cutoff),
        "class_idx": np.int64(-1 if class_idx is None else class_idx),
    }
    if network is not None:
        arrays["network_name"] = np.asarray(Path(network).name)
        arrays["network_sha256"] = np.asarray(file_sha256(Path(network)))
    arrays.update(extra or {})
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def ws_file_network(path) -> tuple[str, str] | None:
    """(file name, sha256) of the network a ws file was made with, or None when not recorded
    (files written before this was recorded, or by other tools)."""
    with np.load(path) as data:
        if "network_sha256" not in data:
            return None
        return str(data["network_name"]) if "network_name" in data else "?", str(data["network_sha256"])


def is_ws_file(path) -> bool:
    """True for a ws file (`sample --save-ws` / `project`): a .npz zip holding `ws.npy`.

    Network snapshots are zips too (torch.save), so the member name decides, not the header.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return "ws.npy" in zf.namelist()


def read_ws_file(path) -> tuple[np.ndarray, np.ndarray]:
    """(ws as stored, seeds int64 [len(ws)]; -1 where a row has no seed). WsFileError if unreadable;
    the caller checks that ws is [N, num_ws, w_dim] for its network."""
    try:
        with np.load(path) as data:
            ws = np.asarray(data["ws"])
            seeds = np.asarray(data["seeds"]) if "seeds" in data else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # numpy's many ways to refuse
        raise WsFileError(
            f"{path}: not a readable ws file ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None
    if ws.ndim == 0:
        raise WsFileError(f"{path}: ws is a scalar, not [N, num_ws, w_dim]")
    if seeds is None:  # counted only now: a member that is not an array has no length
        seeds = np.full([len(ws)], -1)
    return ws, seeds
