"""Reading a `torch.save` file (zip or the legacy pre-1.6 format) as plain data, running nothing.

rosinality/stylegan2-pytorch checkpoints are `torch.save`s of dicts of state dicts, plus, in
train.py files, an `argparse.Namespace` (docs/formats.md, "rosinality/stylegan2-pytorch
checkpoints"). `torch.load(weights_only=True)` refuses that Namespace, and allowing it takes
`torch.serialization.safe_globals`, which is missing from older torch and changes process-wide
state while active. So the pickle is read here by our own `GuardedUnpickler`, with the same
discipline as `nvidia_pickle`:
- Globals: only `ALLOWED`, each resolved to our own checking callable or an inert stand-in
  (`argparse.Namespace` -> `NamespaceRecord`, storage classes -> `StorageType` markers).
- BUILD only on objects the loader made (OrderedDicts, NamespaceRecords).
- Tensor bytes come from the zip's `<prefix>/data/<key>` records or from the raw storages after a
  legacy file's pickles; together they are charged against the file's size before allocating.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, NamedTuple

import torch

from stylegen.formats.guarded_unpickler import (
    STORAGES,
    GuardedUnpickler,
    Refused,
    RefusedGlobal,
    is_empty,
    nonnegative_ints,
)

#: torch.save's legacy format starts with its magic number, pickled (protocol 2, LONG1).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_HEAD = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little") + b"."
LEGACY_PROTOCOL = 1001

#: The globals a rosinality checkpoint may name (docs/formats.md); everything else is refused.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("argparse", "Namespace"),
        *[("torch", name) for name in STORAGES],
    ]
)


class NamespaceRecord:
    """Stands in for argparse.Namespace: NEWOBJ makes an empty one, BUILD fills `fields`."""

    __slots__ = ("fields",)  # NEWOBJ calls only __new__: `fields` is set by BUILD, if at all


class StorageType(NamedTuple):
    """Stands in for a storage class (`torch.FloatStorage`, ...): the dtype it holds."""

    name: str
    dtype: torch.dtype


class Checkpoint(NamedTuple):
    """What a torch.save file holds, as plain data, and how it was stored."""

    data: Any  # dicts, lists, numbers, strings, tensors (on the CPU); Namespaces as dicts
    serialization: str  # 'zip' or 'legacy'
    locations: frozenset  # the devices the storages were saved from, e.g. {'cuda:0'}


# A storage loader: (key, dtype, numel) -> a flat tensor of that dtype and size.
StorageLoader = Callable[[str, torch.dtype, int], torch.Tensor]


class CheckpointUnpickler(GuardedUnpickler):
    """Resolves only ALLOWED globals, each to a stand-in or a checking wrapper; storages come
    from `load_storage` (None: a pickle that may not reference any)."""

    def __init__(
        self, f: BinaryIO, size: int | None = None, load_storage: StorageLoader | None = None, lenient: bool = False
    ):
        super().__init__(f, size)
        self._load_storage, self._lenient = load_storage, lenient
        self._storages: dict[str, torch.Tensor] = {}
        self._made: set[int] = set()  # ids of the storage tensors made here
        self.locations: set[str] = set()
        self._types = {name: StorageType(name, dtype) for name, dtype in STORAGES.items()}
        self._wrappers: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("argparse", "Namespace"): NamespaceRecord,
            **{("torch", name): t for name, t in self._types.items()},
        }
        assert self._wrappers.keys() == ALLOWED

    def find_class(self, module: str, name: str) -> Any:
        obj = self._wrappers.get((module, name))
        if obj is None and self._lenient:
            return _inert  # structure only (see read_zip's `meta`): never the real global
        if obj is None:
            raise RefusedGlobal(
                f"refused global '{module}.{name}' (not a rosinality checkpoint global)", (module, name)
            )
        self._names[id(obj)] = f"{module}.{name}"
        return obj

    def _build(self, inst: Any, state: Any) -> None:
        # Instance attributes only, never dunder names (they would change how later opcodes
        # treat the object); a Namespace's attributes become plain data in `fields`.
        plain = isinstance(state, dict) and all(type(k) is str and not k.startswith("__") for k in state)
        if type(inst) is collections.OrderedDict and plain:
            inst.__dict__.update(state)  # a state dict's `_metadata`
        elif type(inst) is NamespaceRecord and plain:
            inst.fields = {**getattr(inst, "fields", {}), **state}
        elif type(inst) in (collections.OrderedDict, NamespaceRecord):
            raise Refused(f"BUILD on a {type(inst).__name__} with a state that is not plain attributes")
        else:
            super()._build(inst, state)

    def persistent_load(self, pid: Any) -> torch.Tensor:
        # zip: ('storage', type, key, location, numel); legacy: the same + view_metadata.
        if self._load_storage is None or not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise Refused(f"unexpected persistent id {str(pid)[:80]} (a checkpoint holds only storages)")
        stype, key, location, numel = pid[1:5]
        if not any(stype is t for t in self._types.values()):
            raise Refused("storage of an unknown type")
        if not isinstance(key, str) or not isinstance(location, str) or type(numel) is not int or numel < 0:
            raise Refused("malformed storage reference")
        self.locations.add(location)
        base = self._storages.get(key)
        if base is None:
            base = self._storages[key] = self._load_storage(key, stype.dtype, numel)
            self._made.add(id(base))
        elif base.dtype != stype.dtype or base.numel() != numel:
            raise Refused(f"storage {key} referenced with two different types or sizes")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return base
        if not (isinstance(view, tuple) and len(view) == 3 and all(type(v) is int for v in view[1:])):
            raise Refused("malformed storage view")
        _, offset, count = view
        if offset < 0 or count < 0 or offset + count > numel:
            raise Refused(f"storage view [{offset}, {offset + count}) outside its storage of {numel} values")
        view_storage = base[offset : offset + count]
        self._made.add(id(view_storage))
        return view_storage

    def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
        if not isinstance(storage, torch.Tensor) or id(storage) not in self._made:
            raise Refused("tensor rebuilt from something other than a storage of this file")
        if not is_empty(backward_hooks) or not is_empty(metadata):
            raise Refused("tensor with hooks or metadata (a checkpoint's tensors have none)")
        size, stride = nonnegative_ints(size, "tensor size"), nonnegative_ints(stride, "tensor stride")
        if type(storage_offset) is not int or storage_offset < 0 or len(size) != len(stride):
            raise Refused("malformed tensor (offset, size and stride)")
        if type(requires_grad) is not bool:
            raise Refused("tensor requires_grad must be a bool")
        if math.prod(size) == 0:
            return storage.new_empty(size)
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel() or math.prod(size) > storage.numel():
            raise Refused(f"tensor of size {size} reaches past its storage ({storage.numel()} values)")
        return storage.as_strided(size, stride, storage_offset)

    def _rebuild_parameter(self, data, requires_grad, backward_hooks) -> torch.Tensor:
        if type(data) is not torch.Tensor or type(requires_grad) is not bool or not is_empty(backward_hooks):
            raise Refused("parameter rebuilt from something other than a tensor")
        return data  # a plain tensor: nothing here is trained


def _inert(*args: Any, **kwargs: Any) -> None:
    """What a refused global stands for while only looking at a file's structure: does nothing."""


class _Budget:
    """Bytes of tensor data a file may still ask for: at most what the file holds."""

    def __init__(self, size: int):
        self.size = self.left = size

    def charge(self, nbytes: int, what: str) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise Refused(f"{what} of {nbytes} bytes: more tensor data than the {self.size}-byte file holds")


def _plain(data: Any) -> Any:
    """The top-level values with every Namespace record replaced by its field dict."""
    if isinstance(data, NamespaceRecord):
        return dict(getattr(data, "fields", {}))
    if type(data) is dict:
        return {k: _plain(v) for k, v in data.items()}
    return data


def _zip_pickle(zf: zipfile.ZipFile, size: int) -> tuple[str, bytes]:
    """(record prefix, data.pkl bytes) of a torch zip; Refused / ValueError when it is not one."""
    names = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(names) != 1:
        raise ValueError("a zip without one <name>/data.pkl record (not a torch.save file)")
    prefix = names[0][: -len("data.pkl")]
    for info in zf.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
            raise Refused(f"compressed or oversized zip record {info.filename[:80]} (torch.save stores records)")
    order = prefix + "byteorder"
    if order in zf.NameToInfo and zf.read(order) != b"little":
        raise Refused("big-endian tensor data (only little-endian checkpoints are read)")
    return prefix, zf.read(names[0])


def read_zip(f: BinaryIO, size: int, meta: bool = False) -> Checkpoint:
    """The data of a torch.save zip.

    meta: the structure only, to recognise a file: tensors on the 'meta' device (no tensor bytes
    read), and each global off the allow-list resolves to an inert function returning None (so
    a file that the full read refuses is still recognised, and refused there with its name).
    """
    zf = zipfile.ZipFile(f)
    prefix, pkl = _zip_pickle(zf, size)
    budget = _Budget(size)

    def load_storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        nbytes = numel * dtype.itemsize
        budget.charge(nbytes, f"storage {key}")
        if meta:
            return torch.empty(numel, dtype=dtype, device="meta")
        info = zf.NameToInfo.get(f"{prefix}data/{key}")
        if info is None or info.file_size != nbytes:
            found = "missing" if info is None else f"{info.file_size} bytes"
            raise ValueError(f"tensor record data/{key} is {found}, its storage needs {nbytes} bytes")
        return _typed(bytearray(zf.read(info)), dtype, numel)

    unpickler = CheckpointUnpickler(io.BytesIO(pkl), len(pkl), load_storage, lenient=meta)
    data = unpickler.load()
    return Checkpoint(_plain(data), "zip", frozenset(unpickler.locations))


def _typed(raw: bytearray, dtype: torch.dtype, numel: int) -> torch.Tensor:
    if numel == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(raw, dtype=torch.uint8).view(dtype)


def _remaining(f: BinaryIO) -> int:
    return max(os.fstat(f.fileno()).st_size - f.tell(), 0)


def read_legacy(f: BinaryIO) -> Checkpoint:
    """The data of a legacy (torch < 1.6) torch.save file: magic, protocol, sys info, the object,
    its storage keys, then each storage's raw bytes (int64 element count + data)."""
    if CheckpointUnpickler(f).load() != LEGACY_MAGIC:
        raise ValueError("not a legacy torch file (bad magic number)")
    if CheckpointUnpickler(f).load() != LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy torch protocol version")
    info = CheckpointUnpickler(f).load()
    if not isinstance(info, dict) or info.get("little_endian", True) is not True:
        raise Refused("big-endian or malformed legacy torch file (only little-endian files are read)")
    budget = _Budget(_remaining(f))
    buffers: dict[str, tuple[torch.Tensor, int]] = {}  # key -> (bytes to fill, element count)

    def load_storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        nbytes = numel * dtype.itemsize
        budget.charge(nbytes, f"storage {key}")
        buf = torch.empty(nbytes, dtype=torch.uint8)  # filled from the file below
        buffers[key] = (buf, numel)
        return buf.view(dtype) if numel else torch.empty(0, dtype=dtype)

    unpickler = CheckpointUnpickler(f, None, load_storage)
    data = unpickler.load()
    keys = CheckpointUnpickler(f).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(buffers):
        raise ValueError("legacy torch file: its storage list does not match the pickle")
    for key in keys:
        _read_raw_storage(f, key, *buffers[key])
    return Checkpoint(_plain(data), "legacy", frozenset(unpickler.locations))


def _read_raw_storage(f: BinaryIO, key: str, buf: torch.Tensor, numel: int) -> None:
    head = f.read(8)
    if len(head) != 8:
        raise EOFError(f"file ends before storage {key}")
    (stated,) = struct.unpack("<q", head)
    if stated != numel:
        raise ValueError(f"storage {key}: its header says {stated} values, the pickle {numel}")
    nbytes = buf.numel()
    if nbytes and f.readinto(memoryview(buf.numpy())) != nbytes:
        raise EOFError(f"file ends inside storage {key}")


def is_legacy_torch(path: str | os.PathLike) -> bool:
    """Whether the file starts with torch.save's legacy magic number (not an NVIDIA pickle)."""
    with open(path, "rb") as f:
        return f.read(len(LEGACY_HEAD)) == LEGACY_HEAD


def read_checkpoint(path: str | os.PathLike, meta: bool = False) -> Checkpoint:
    """Read a torch.save file (zip or legacy) as plain data, running nothing from it.

    meta (zip files only): the structure only, to recognise a file (see `read_zip`).
    Raises Refused (RefusedGlobal for a global off the allow-list) for anything a checkpoint
    never needs; pickle.UnpicklingError, EOFError, zipfile.BadZipFile or ValueError when corrupt.
    """
    with open(path, "rb") as f:
        size = _remaining(f)
        is_zip = f.read(4) == b"PK\x03\x04"
        f.seek(0)
        try:
            return read_zip(f, size, meta) if is_zip else read_legacy(f)
        except (struct.error, KeyError, IndexError, AttributeError, TypeError) as e:
            # how the pure-Python unpickler says "corrupt"
            raise pickle.UnpicklingError(f"malformed pickle ({type(e).__name__}: {str(e)[:80]})") from None
