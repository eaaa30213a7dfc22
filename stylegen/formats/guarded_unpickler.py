"""A pure-Python unpickler that lets a file touch only what it created and allocate only what it holds.

`pickle._Unpickler` with its mutating opcodes (BUILD, APPEND(S), SETITEM(S), ADDITEMS) checking
their target first: the C unpickler cannot intercept BUILD, which would otherwise set attributes
on any global the file names. Reads are clamped to the file's size, and `_charge` counts what the
file asks to allocate against that size. Also here: the pre-check for torch's legacy tensor
payloads (torch allocates their storages at the size the header states, before reading them).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
from typing import Any, BinaryIO, Callable, NamedTuple

import torch


class Refused(pickle.UnpicklingError):
    """The pickle asks for something a network file never needs; the message says what."""


class RefusedGlobal(Refused):
    """The pickle references a global that is not on the allow-list; `global_name` is its
    (module, name) when known, so a caller can hand a file of another format to its reader."""

    def __init__(self, message: str, global_name: tuple[str, str] | None = None):
        super().__init__(message)
        self.global_name = global_name


STORAGES = {  # the legacy typed storage classes, by the element type they hold
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}  # fmt: skip
ELEMENT_SIZE = {name: torch._utils._element_size(dtype) for name, dtype in STORAGES.items()}


def is_empty(x: Any) -> bool:
    """None or an empty plain dict / OrderedDict (what an unused hook or state slot holds)."""
    return x is None or (type(x) in (dict, collections.OrderedDict) and not x)


def nonnegative_ints(x: Any, what: str) -> tuple:
    """x itself if it is a tuple of non-negative ints (a shape or stride), else Refused."""
    if not isinstance(x, tuple) or not all(type(v) is int and v >= 0 for v in x):
        raise Refused(f"{what} must be a tuple of non-negative ints")
    return x


class _BoundedFile:
    """A reader that never asks the file for more than it holds: the pure-Python unpickler reads
    a length from the file and then `read(length)`, and an unclamped read allocates that length."""

    def __init__(self, f: BinaryIO, size: int):
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(self._left if n is None or n < 0 else min(n, self._left))
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self._f.readline(self._left)
        self._left -= len(data)
        return data


def _remaining_size(f: BinaryIO) -> int:
    try:
        return max(os.fstat(f.fileno()).st_size - f.tell(), 0)
    except (AttributeError, OSError, io.UnsupportedOperation):
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
        return end - pos


_BASE = pickle._Unpickler.dispatch  # type: ignore[attr-defined]


class GuardedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """pickle._Unpickler whose mutating opcodes check their target first and whose reads are
    clamped to the file; subclasses say which BUILD targets they accept (`_build`)."""

    dispatch = dict(_BASE)

    def __init__(self, f: BinaryIO, size: int | None = None):
        self._size = _remaining_size(f) if size is None else size
        self._budget = self._size
        self._names: dict[int, str] = {}  # id of a resolved global -> the name the file used
        super().__init__(_BoundedFile(f, self._size))

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"tensor data stored outside the pickle (persistent id {str(pid)[:80]})")

    def _charge(self, nbytes: int, what: str) -> None:
        """Count an allocation the file asks for; refuse once the total exceeds the file's size."""
        self._budget -= nbytes
        if self._budget < 0:
            raise Refused(f"{what} of {nbytes} bytes is more than the {self._size}-byte file can hold")

    def _build(self, inst: Any, state: Any) -> None:
        raise Refused(f"BUILD on {self._describe(inst)} (a file may only set the state of objects it created)")

    def _describe(self, obj: Any) -> str:
        name = self._names.get(id(obj))
        return f"the global {name}" if name else f"a {type(obj).__name__}"

    def _load_build(self) -> None:
        state = self.stack.pop()
        self._build(self.stack[-1], state)

    dispatch[pickle.BUILD[0]] = _load_build


def _guard(opcode: bytes, where: Callable[[Any], Any], kinds: tuple, what: str) -> None:
    """Replace `opcode`'s handler with one that refuses a target (found by `where`) of another type."""
    base = _BASE[opcode[0]]

    def load(self) -> None:
        try:
            target = where(self)
        except IndexError:
            target = None  # malformed: let pickle's own handler raise its error
        if target is not None and not isinstance(target, kinds):
            raise Refused(f"{what} on {self._describe(target)} (a file may only fill containers it created)")
        base(self)

    GuardedUnpickler.dispatch[opcode[0]] = load


_guard(pickle.APPEND, lambda u: u.stack[-2], (list,), "APPEND")
_guard(pickle.APPENDS, lambda u: u.metastack[-1][-1], (list,), "APPENDS")
_guard(pickle.SETITEM, lambda u: u.stack[-3], (dict,), "SETITEM")
_guard(pickle.SETITEMS, lambda u: u.metastack[-1][-1], (dict,), "SETITEMS")
_guard(pickle.ADDITEMS, lambda u: u.metastack[-1][-1], (set,), "ADDITEMS")


def _load_bytearray8(self: GuardedUnpickler) -> None:
    (n,) = struct.unpack("<Q", self.read(8))
    self._charge(n, "a bytearray")  # before allocating: pickle's own handler does bytearray(n) first
    b = bytearray(n)
    self.readinto(b)
    self.append(b)


GuardedUnpickler.dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8


class _StorageType(NamedTuple):
    """Stands in for a storage class inside a tensor payload: its name and element size only."""

    name: str
    element_size: int


class _PayloadScan(GuardedUnpickler):
    """Reads the pickles of a legacy torch.save payload, noting the size of each storage."""

    def __init__(self, f: BinaryIO, size: int):
        super().__init__(f, size)
        self.storage_bytes: dict[Any, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in ELEMENT_SIZE:
            return _StorageType(name, ELEMENT_SIZE[name])
        raise RefusedGlobal(f"refused global '{module}.{name}' in a tensor payload")

    def persistent_load(self, pid: Any) -> None:
        # ('storage', storage type, root key, location, numel, view metadata), as torch writes it
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise Refused("malformed tensor payload (unexpected persistent id)")
        if type(pid[4]) is not int or pid[4] < 0 or not isinstance(pid[2], (str, int)):
            raise Refused("malformed tensor payload (bad storage size)")
        self.storage_bytes[pid[2]] = max(self.storage_bytes.get(pid[2], 0), pid[4] * pid[1].element_size)


def payload_storage_bytes(b: bytes) -> int:
    """Bytes torch will allocate for the storages of a torch.save payload, before reading them."""
    if b.startswith(b"PK\x03\x04"):
        return len(b)  # zip: torch checks each record's size against its storage itself
    f = io.BytesIO(b)
    scan = _PayloadScan(f, len(b))
    for _ in range(4):  # magic number, protocol version, sys info, the object
        scan.load()
    total = sum(scan.storage_bytes.values())
    if total > len(b):
        raise Refused(f"tensor payload of {len(b)} bytes asks for {total} bytes of storage")
    return total


def describe_weights_only_error(e: BaseException) -> str:
    """One line for an error of torch's weights-only unpickler: the global it refused, if any."""
    text = " ".join(str(e).split())
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return f"refused global '{m.group(1)}' (not a network file global)"
    parts = [" ".join(p.split()) for p in re.split(r"\n\s*\n", str(e)) if p.strip()]
    if len(parts) > 1 and parts[0].startswith("Weights only load failed"):
        text = parts[1]  # parts[0] is torch's advice to load with weights_only=False: never
    return f"refused by the weights-only loader ({text[:200]})"
