"""Atomic file replacement: every file stylegen writes goes through `atomic_path`.

A reader (or a crash, a kill, a full disk) sees the old file or the new one, never a part of
either: the data goes to a fresh temporary file in the destination's directory, which is renamed
over the destination only once it is complete.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@functools.cache
def _umask() -> int:
    """The process umask, read once: reading it means setting it, which must not race with
    threads creating files later."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; when the block ends without an error,
    it replaces `path`. On any error (or KeyboardInterrupt) it is removed and `path` is untouched.

    suffix: of the temporary name (np.savez wants ".npz"). durable: fsync the data before the
    rename (snapshots: the new file survives a power cut once this returns). The file gets the
    ordinary 0666 & ~umask permissions, not mkstemp's 0600.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
