"""Reading NVIDIA's legacy TensorFlow network pickles (StyleGAN2 TF, StyleGAN2-ADA TF) as plain data.

The file is a pickle of the tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects, each
pickled as the class, NEWOBJ with no arguments, then its state dict and BUILD (docs/formats.md,
"Legacy TensorFlow pickles"). TensorFlow's own class runs `exec(build_module_src)` in
`__setstate__`; here the class is a stand-in that only keeps the dict BUILD hands it, and
`build_module_src` is never run, compiled or parsed.

The unpickler is the NVIDIA reader's (`stylegen.formats.nvidia_pickle.RestrictedUnpickler`) with a
smaller allow-list: the Network class and numpy's array, dtype and scalar globals, each mapped to
our own checking callables. BUILD (and APPEND, SETITEM, ...) touch only objects it made, NEWOBJ
only makes a fresh stand-in, and every allocation is charged against the file's size.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from stylegen.formats.guarded_unpickler import Refused, RefusedGlobal
from stylegen.formats.nvidia_pickle import RestrictedUnpickler

#: The global that marks a TensorFlow network pickle.
TF_NETWORK_GLOBAL = ("dnnlib.tflib.network", "Network")
#: The other globals such a file may name (numpy 1 and numpy 2 spellings).
NUMPY_GLOBALS = frozenset(
    [("numpy", "dtype"), ("numpy", "ndarray")]
    + [
        (mod, name)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    ]
)
#: dnnlib state versions: 4 = StyleGAN2 TF, 5 = StyleGAN2-ADA TF.
SUPPORTED_VERSIONS = {4: "StyleGAN2 TF", 5: "StyleGAN2-ADA TF"}
_MAX_DEPTH = 2  # real files: top network -> components 'synthesis' and 'mapping', which have none


class TFFormatError(ValueError):
    """A well-formed pickle that is not a TF network file we read; the message says what it is."""


class TFNetworkObject:
    """Stands in for dnnlib.tflib.network.Network: only keeps the dict its BUILD hands it."""

    state: dict | None = None

    def __init__(self, *args: Any, **kwargs: Any):  # REDUCE would call the class: a network is never called
        raise Refused("dnnlib.tflib.network.Network called (a network object is made by NEWOBJ only)")


class TFUnpickler(RestrictedUnpickler):
    """RestrictedUnpickler that allows only the TF network class and numpy's data globals."""

    dispatch = dict(RestrictedUnpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == TF_NETWORK_GLOBAL:
            obj: Any = TFNetworkObject
        elif (module, name) in NUMPY_GLOBALS:
            obj = self._wrappers[(module, name)]
        else:
            raise RefusedGlobal(
                f"refused global '{module}.{name}' (not a TensorFlow network pickle global)", global_name=(module, name)
            )
        self._names[id(obj)] = f"{module}.{name}"
        return obj

    def _new_object(self, cls: Any, args: Any, kwargs: Any) -> None:
        # NEWOBJ / NEWOBJ_EX: only the Network stand-in, with no arguments (how pickle writes it).
        if cls is not TFNetworkObject:
            raise Refused(f"NEWOBJ of {self._describe(cls)} (only the network class is instantiated)")
        if args != () or kwargs not in (None, {}):
            raise Refused("NEWOBJ of the network class with arguments (a network is made without any)")
        self.append(object.__new__(TFNetworkObject))

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        self._new_object(self.stack.pop(), args, None)

    def _load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        self._new_object(self.stack.pop(), args, kwargs)

    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex

    def _build(self, inst: Any, state: Any) -> None:
        if type(inst) is TFNetworkObject:
            if inst.state is not None:
                raise Refused("BUILD on a network object that already has its state")
            if not isinstance(state, dict) or not all(type(k) is str for k in state):
                raise Refused("network state is not a dict of named fields")
            inst.state = dict(state)
        else:
            super()._build(inst, state)  # numpy arrays and dtypes it made; anything else is refused


@dataclass(frozen=True)
class TFNetwork:
    """One network of the file, checked: its fields and its variables in one flat name space."""

    name: str  # 'G', 'D', 'Gs' (the file's own name)
    version: int  # dnnlib state version: 4 (StyleGAN2 TF) or 5 (StyleGAN2-ADA TF)
    build_func_name: str  # 'G_main', 'D_stylegan2', 'D_main', ... (informational)
    static_kwargs: dict  # keyword arguments of the build function
    variables: dict  # flat name ('synthesis/4x4/Conv/weight') -> float32 numpy array (0-d for scalars)
    components: dict  # component key -> its build function name

    @property
    def variant(self) -> str:
        return SUPPORTED_VERSIONS.get(self.version, f"state version {self.version}")


def read_tf_pickle(f: BinaryIO) -> dict[str, TFNetwork]:
    """The networks of a TF network pickle: {'G': ..., 'D': ..., 'G_ema': Gs}.

    A bare Network (a file holding only Gs, as some third-party tools write) is keyed by its own
    name ('Gs' -> 'G_ema'). Raises Refused for anything a network file never holds,
    pickle.UnpicklingError (or EOFError) for a malformed or truncated file, TFFormatError for a
    TF network of a version or layout we do not read.
    """
    try:
        data = TFUnpickler(f).load()
    except (struct.error, KeyError, IndexError) as e:  # how the pure-Python unpickler says "corrupt"
        raise pickle.UnpicklingError(f"malformed pickle ({type(e).__name__}: {str(e)[:80]})") from None
    if isinstance(data, TFNetworkObject):
        net = _checked(data, "the network")
        return {{"Gs": "G_ema", "G": "G", "D": "D"}.get(net.name, "G_ema"): net}
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkObject) for n in data)):
        raise TFFormatError(f"not a TensorFlow network pickle (expected the tuple (G, D, Gs), got {_describe(data)})")
    return {key: _checked(obj, key) for key, obj in zip(("G", "D", "G_ema"), data)}


def _checked(obj: TFNetworkObject, where: str) -> TFNetwork:
    state = _state(obj, where)
    version = state.get("version")
    _check_version(version, state.get("build_func_name"), where)
    variables: dict[str, np.ndarray] = {}
    components: dict[str, str] = {}
    _collect(obj, "", variables, components, depth=0, where=where)
    static_kwargs = state.get("static_kwargs") or {}
    if not isinstance(static_kwargs, dict) or not all(type(k) is str for k in static_kwargs):
        raise TFFormatError(f"{where}: static_kwargs is not a dict of named arguments")
    return TFNetwork(
        name=_text(state.get("name"), where, "name"),
        version=version,
        build_func_name=_text(state.get("build_func_name", ""), where, "build_func_name"),
        static_kwargs=dict(static_kwargs),
        variables=variables,
        components=components,
    )


def _state(obj: Any, where: str) -> dict:
    if type(obj) is not TFNetworkObject or obj.state is None:
        raise TFFormatError(f"{where}: a network object without state")
    return obj.state


def _check_version(version: Any, build_func: Any, where: str) -> None:
    if type(version) is not int:
        raise TFFormatError(f"{where}: the network state has no version number (not a dnnlib network)")
    if version in SUPPORTED_VERSIONS:
        return
    if version < 4:
        what = "a StyleGAN (1) network" if str(build_func).startswith(("G_style", "D_basic")) else "an older network"
        raise TFFormatError(
            f"{where} is {what} (dnnlib TensorFlow network, state version {version}, build function "
            f"{str(build_func)[:40]}): only StyleGAN2 TF (version 4) and StyleGAN2-ADA TF (version 5) pickles are read"
        )
    raise TFFormatError(
        f"{where}: dnnlib state version {version} is unknown (StyleGAN2 TF wrote 4, StyleGAN2-ADA TF 5)"
    )


def _collect(obj: Any, prefix: str, out: dict, components: dict, depth: int, where: str) -> None:
    """Variables of a network and its components, in one flat name space ('mapping/Dense0/weight')."""
    state = _state(obj, where)
    if depth > 0:
        _check_version(state.get("version"), state.get("build_func_name"), f"{where} component {prefix[:-1]}")
    variables = state.get("variables")
    if not isinstance(variables, (list, tuple)):
        raise TFFormatError(f"{where}: the network state has no list of variables")
    for item in variables:
        if not (isinstance(item, tuple) and len(item) == 2 and type(item[0]) is str):
            raise TFFormatError(f"{where}: a variable that is not a (name, value) pair")
        name = prefix + item[0]
        if name in out:
            raise TFFormatError(f"{where}: variable {name} appears twice")
        out[name] = _array(item[1], name)
    subs = state.get("components") or {}
    if not isinstance(subs, dict):
        raise TFFormatError(f"{where}: components is not a dict")
    if subs and depth >= _MAX_DEPTH:
        raise TFFormatError(f"{where}: components nested deeper than a TF network's")
    for key, sub in subs.items():
        if type(key) is not str or not key or "/" in key:
            raise TFFormatError(f"{where}: a component with the bad name {str(key)[:40]!r}")
        sub_state = _state(sub, f"{where} component {key}")
        components[prefix + key] = _text(sub_state.get("build_func_name", ""), where, "build_func_name")
        _collect(sub, f"{prefix}{key}/", out, components, depth + 1, where)


def _array(value: Any, name: str) -> np.ndarray:
    """A variable's value as a float32 array: numpy arrays, and numpy scalars for 0-d variables."""
    if type(value) is not np.ndarray and not isinstance(value, np.generic):
        raise TFFormatError(f"variable {name} is a {type(value).__name__}, not numpy data")
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise TFFormatError(f"variable {name} holds {a.dtype} data, not floating point")
    return a.astype(np.float32, copy=False)


def _text(value: Any, where: str, field: str) -> str:
    if type(value) is not str:
        raise TFFormatError(f"{where}: {field} is not a string")
    return value


def _describe(obj: Any) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}"
    if isinstance(obj, dict):
        return "a dict" + (f" with keys {', '.join(map(str, list(obj)[:6]))}" if obj else " (empty)")
    return f"a {type(obj).__name__}"
