"""The restricted unpickler for NVIDIA's network pickles: data in, nothing from the file run.

Three rules, each closing a way a file could reach beyond the objects it builds (the globals a
real file holds are listed in docs/formats.md, "NVIDIA network pickles"):
- Globals: only the allow-list, and each one is our own wrapper or stand-in, never the library
  function itself, so nothing the file does can reach torch's or numpy's objects.
- BUILD (and APPEND, SETITEM, ADDITEMS) may only touch objects the loader created: EasyDict and
  OrderedDict instances, numpy arrays, fresh numpy dtypes. The C unpickler cannot intercept BUILD,
  so this is the pure-Python `pickle._Unpickler` with those dispatch entries replaced
  (`stylegen.formats.guarded_unpickler`).
- Allocations the file asks for (numpy arrays, bytearrays, storages, tensor payloads) are charged
  against the file's own size: a legitimate file holds every byte of its data, so a request for
  more is refused before anything is allocated.
"""

from __future__ import annotations

import builtins
import collections
import io
import math
import pickle
import struct
from typing import Any, BinaryIO, Callable, NamedTuple

import numpy as np
import torch

from stylegen.formats.guarded_unpickler import (
    ELEMENT_SIZE,
    STORAGES,
    GuardedUnpickler,
    Refused,
    RefusedGlobal,
    describe_weights_only_error,
    is_empty,
    nonnegative_ints,
    payload_storage_bytes,
)


class Record(NamedTuple):
    """A network object of the pickle, as data: its class name and its `__dict__`."""

    class_name: str
    state: dict


class EasyDict(dict):
    """Stands in for dnnlib.util.EasyDict: a plain dict (pickle rebuilds it with NEWOBJ + items)."""


class _NdarrayType:
    """Stands in for the `numpy.ndarray` global: only `_reconstruct`'s first argument, never called."""

    def __call__(self, *args: Any) -> None:
        raise Refused("numpy.ndarray called directly (it would allocate whatever shape the file asks)")


_NDARRAY = _NdarrayType()
_np_core = getattr(np, "_core", None) or np.core
_np_reconstruct, _np_scalar = _np_core.multiarray._reconstruct, _np_core.multiarray.scalar
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex: no objects, no structs, no strings
_BUILTINS = ("set", "frozenset", "slice", "complex")  # no allocation beyond what the file holds

#: The globals a network pickle may name (see docs/formats.md); each maps to a wrapper or stand-in.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [
        ("torch_utils.persistence", "_reconstruct_persistent_obj"),
        ("dnnlib.util", "EasyDict"),
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch.storage", "_load_from_bytes"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("builtins", "bytearray"),
        *[("builtins", name) for name in _BUILTINS],
        *[
            (mod, name)
            for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ],
        *[("torch", name) for name in STORAGES],
    ]
)


def _reconstruct_persistent_obj(meta: dict) -> Record:
    # Replaces torch_utils.persistence._reconstruct_persistent_obj: module_src is ignored.
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("malformed persistent object (expected type 'class' with a state dict)")
    return Record(str(meta.get("class_name")), meta["state"])


class RestrictedUnpickler(GuardedUnpickler):
    """Resolves only ALLOWED globals, each to a checking wrapper; BUILD only on objects it made."""

    def __init__(self, f: BinaryIO, size: int | None = None):
        super().__init__(f, size)
        self._fresh_dtypes: dict[int, np.dtype] = {}  # made here, not yet BUILT or used
        wrappers: dict[tuple[str, str], Any] = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
            ("dnnlib.util", "EasyDict"): EasyDict,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter_with_state,
            ("torch.storage", "_load_from_bytes"): self._load_from_bytes,
            ("numpy", "dtype"): self._dtype,
            ("numpy", "ndarray"): _NDARRAY,
            ("builtins", "bytearray"): self._bytearray,
            **{("builtins", name): getattr(builtins, name) for name in _BUILTINS},
        }
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            wrappers[(mod, "_reconstruct")], wrappers[(mod, "scalar")] = self._reconstruct, self._scalar
        for name in STORAGES:
            wrappers[("torch", name)] = self._storage_class(getattr(torch, name))
        assert wrappers.keys() == ALLOWED
        self._wrappers = wrappers

    def find_class(self, module: str, name: str) -> Any:
        obj = self._wrappers.get((module, name))
        if obj is None:
            raise RefusedGlobal(f"refused global '{module}.{name}' (not a network pickle global)", (module, name))
        self._names[id(obj)] = f"{module}.{name}"
        return obj

    # -- BUILD: only on objects made here ---------------------------------------------------
    def _build(self, inst: Any, state: Any) -> None:
        if type(inst) in (EasyDict, collections.OrderedDict):
            # Instance attributes only, set directly (not setattr/__setstate__) and never dunder
            # names, which would change how later opcodes treat the object.
            if not isinstance(state, dict) or not all(type(k) is str and not k.startswith("__") for k in state):
                raise Refused(f"BUILD on a {type(inst).__name__} with a state that is not plain attributes")
            inst.__dict__.update(state)
        elif type(inst) is np.ndarray:
            self._build_array(inst, state)
        elif isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
        else:
            super()._build(inst, state)

    def _build_array(self, a: np.ndarray, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused("malformed numpy array state")
        shape, dtype, fortran, raw = state[-4:]
        shape, dtype = nonnegative_ints(shape, "numpy array shape"), self._take_dtype(dtype)
        if type(fortran) is not bool or type(raw) not in (bytes, bytearray):
            raise Refused("numpy array state must hold raw bytes (no object arrays)")
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise Refused(f"numpy array data has {len(raw)} bytes, its shape {shape} needs another size")
        self._charge(len(raw), "a numpy array")
        a.__setstate__(state)

    def _build_dtype(self, d: np.dtype, state: Any) -> None:
        # Only the byte order may change: numpy takes flags from the state, and a flags value with
        # NPY_ITEM_HASOBJECT makes a float dtype an object dtype (raw bytes read as pointers).
        if self._fresh_dtypes.pop(id(d), None) is None:
            raise Refused("BUILD on a numpy dtype that is already in use")
        ok = isinstance(state, tuple) and len(state) in (8, 9) and state[2:5] == (None, None, None)
        ok = (
            ok
            and state[1] in ("<", ">", "|", "=")
            and state[5:8] in ((-1, -1, d.flags), (d.itemsize, d.alignment, d.flags))
        )
        if not ok or (len(state) == 9 and state[8] is not None):
            raise Refused(f"numpy dtype state {str(state)[:80]} is not that of a plain {d.name}")
        d.__setstate__(state)

    # -- numpy ------------------------------------------------------------------------------
    def _dtype(self, obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
        if type(obj) is not str or type(align) is not bool or type(copy) is not bool:
            raise Refused("numpy dtype must be given by a type code")
        d = np.dtype(obj, align, True)  # always a copy: BUILD must never reach numpy's shared dtypes
        if d.kind not in _NUMERIC_KINDS or d.hasobject or d.fields is not None or d.subdtype is not None:
            raise Refused(f"numpy dtype {obj!r} (only bool, int, float and complex data)")
        self._fresh_dtypes[id(d)] = d
        return d

    def _take_dtype(self, d: Any) -> np.dtype:
        if not isinstance(d, np.dtype) or d.kind not in _NUMERIC_KINDS or d.hasobject:
            raise Refused(f"numpy data of type {d!r} (only bool, int, float and complex data)")
        self._fresh_dtypes.pop(id(d), None)  # in use now: no BUILD may change it any more
        return d

    def _reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
        if subtype is not _NDARRAY or type(typecode) not in (bytes, str):
            raise Refused("numpy _reconstruct of something other than a plain ndarray")
        d = np.dtype(typecode)
        if d.kind not in _NUMERIC_KINDS:
            raise Refused(f"numpy array of type {typecode!r} (only bool, int, float and complex data)")
        shape = nonnegative_ints(shape, "numpy array shape")
        self._charge(math.prod(shape) * d.itemsize, "a numpy array")
        return _np_reconstruct(np.ndarray, shape, typecode)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        d = self._take_dtype(dtype)
        if type(data) is not bytes or len(data) != d.itemsize:
            raise Refused(f"numpy {d.name} scalar needs {d.itemsize} raw bytes")
        return _np_scalar(d, data)

    # -- builtins and storages --------------------------------------------------------------
    def _bytearray(self, *args: Any) -> bytearray:
        # Protocols 3-4 pickle a bytearray as bytearray(bytes), protocol 2 as bytearray(str, enc).
        if not args or (len(args) == 1 and type(args[0]) in (bytes, bytearray)):
            self._charge(len(args[0]) if args else 0, "a bytearray")
            return bytearray(*args)
        if len(args) == 2 and type(args[0]) is str and type(args[1]) is str:
            self._charge(len(args[0]), "a bytearray")
            return bytearray(args[0], args[1])
        raise Refused("bytearray from something other than bytes (a size would allocate it)")

    def _storage_class(self, cls: type) -> Callable[..., Any]:
        element = ELEMENT_SIZE[cls.__name__]

        def make(data: Any = ()) -> Any:
            # Old torch pickled a storage as Storage(list of values); a size would allocate.
            if type(data) not in (list, tuple):
                raise Refused(f"{cls.__name__} from something other than a list of values")
            self._charge(len(data) * element, f"a {cls.__name__}")
            return cls(list(data))

        return make

    # -- torch tensors ----------------------------------------------------------------------
    def _load_from_bytes(self, b: Any) -> Any:
        # Replaces torch.storage._load_from_bytes (which uses weights_only=False): the payload is
        # a torch.save byte string; torch allocates a legacy payload's storages at the size its
        # header states, so that size is checked (and charged) first.
        if type(b) is not bytes:
            raise Refused("tensor payload is not bytes")
        self._charge(payload_storage_bytes(b), "tensor data")
        try:
            return torch.load(io.BytesIO(b), weights_only=True)
        except pickle.UnpicklingError as e:
            raise Refused(f"tensor payload {describe_weights_only_error(e)}") from None

    def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
        _no_hooks(backward_hooks)
        if not is_empty(metadata):
            raise Refused("tensor with metadata (a network file's tensors have none)")
        if not isinstance(storage, torch.storage.TypedStorage) or type(storage_offset) is not int:
            raise Refused("tensor rebuilt from something other than a storage")
        size, stride = nonnegative_ints(size, "tensor size"), nonnegative_ints(stride, "tensor stride")
        if type(requires_grad) is not bool:
            raise Refused("tensor requires_grad must be a bool")
        values = storage._size()  # storage.size() warns that TypedStorage is deprecated, on every tensor
        if math.prod(size) > values:  # stride-0 views could make a huge tensor of one value
            raise Refused(f"tensor of size {size} is larger than its storage ({values} values)")
        return torch._utils._rebuild_tensor_v2(
            storage, storage_offset, size, stride, requires_grad, collections.OrderedDict()
        )

    def _rebuild_parameter(self, data, requires_grad, backward_hooks) -> torch.nn.Parameter:
        _no_hooks(backward_hooks)
        if type(data) is not torch.Tensor or type(requires_grad) is not bool:
            raise Refused("parameter rebuilt from something other than a tensor")
        return torch.nn.Parameter(data, requires_grad)

    def _rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state) -> torch.nn.Parameter:
        # torch sets every name of `state` on the Parameter (setattr), which could shadow any of
        # its methods; a network's parameters carry no such state, so only empty state passes.
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        if not all(is_empty(p) for p in parts):
            raise Refused("parameter with attributes set from the file (a network's parameters have none)")
        return self._rebuild_parameter(data, requires_grad, backward_hooks)


def _no_hooks(hooks: Any) -> None:
    if not is_empty(hooks):
        raise Refused("tensor with backward hooks (a network file's tensors have none)")


def read_records(f: BinaryIO) -> Any:
    """Unpickle an NVIDIA network pickle from a binary file object into plain data + Records.

    Raises Refused (RefusedGlobal for a global off the allow-list) when the file asks for anything
    a network file never needs, pickle.UnpicklingError (or EOFError) when it is malformed.
    """
    try:
        return RestrictedUnpickler(f).load()
    except (struct.error, KeyError, IndexError) as e:  # how the pure-Python unpickler says "corrupt"
        raise pickle.UnpicklingError(f"malformed pickle ({type(e).__name__}: {str(e)[:80]})") from None
