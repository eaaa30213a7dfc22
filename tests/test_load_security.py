"""Loading a network file never runs code from it and never changes anything outside what it builds.

Each attack is a hand-written pickle (opcodes spelled out below) that the old loader accepted or
that tampered with torch or stylegen for the rest of the process. Each must be refused with one
`Error:` line by the CLI, leave torch's functions and our classes as they were, and a real NVIDIA
fixture must still load with the same weights afterwards.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import warnings

import numpy as np
import pytest
import torch
from cli_helpers import usage_error
from payloads import Payload

import stylegen
from stylegen import NetworkLoadError, load_network
from stylegen.formats import nvidia
from stylegen.formats.nvidia_pickle import EasyDict

# ---------------------------------------------------------------------------------------------
# Pickle opcodes, written out: each helper returns the bytes that push one value.


def glob(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def text(s: str) -> bytes:
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def raw(b: bytes) -> bytes:
    return pickle.BINBYTES + struct.pack("<I", len(b)) + b


def integer(n: int) -> bytes:
    if -(2**31) <= n < 2**31:
        return pickle.BININT + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(b)]) + b


def tup(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def call(fn: bytes, *args: bytes) -> bytes:
    return fn + tup(*args) + pickle.REDUCE


def dict_of(**items: bytes) -> bytes:
    return pickle.EMPTY_DICT + pickle.MARK + b"".join(text(k) + v for k, v in items.items()) + pickle.SETITEMS


def empty_ordered_dict() -> bytes:
    return call(glob("collections", "OrderedDict"))


def file_of(value: bytes) -> bytes:
    """A whole pickle (protocol 2) whose object is {'G_ema': value}, like a network pickle."""
    return pickle.PROTO + b"\x02" + dict_of(G_ema=value) + pickle.STOP


def storage_payload(numel: int = 4) -> bytes:
    """torch.storage._load_from_bytes' argument: a legacy torch.save of a float storage; its
    header may claim another element count than the 4 values it holds."""
    f = io.BytesIO()
    with warnings.catch_warnings():  # TypedStorage is deprecated, but it is what NVIDIA's files hold
        warnings.simplefilter("ignore", UserWarning)
        torch.save(torch.zeros(4).storage(), f, _use_new_zipfile_serialization=False)
    b = f.getvalue()
    old = text("cpu") + pickle.BINPUT + b"\x03" + pickle.BININT1 + b"\x04"
    assert b.count(old) == 1, "torch's legacy storage header changed"
    return b.replace(old, text("cpu") + pickle.BINPUT + b"\x03" + integer(numel))


def tensor(numel: int = 4, size: tuple = (4,), stride: tuple = (1,), hooks: bytes | None = None) -> bytes:
    storage = call(glob("torch.storage", "_load_from_bytes"), raw(storage_payload(numel)))
    sizes, strides = tup(*map(integer, size)), tup(*map(integer, stride))
    hooks = empty_ordered_dict() if hooks is None else hooks
    return call(glob("torch._utils", "_rebuild_tensor_v2"), storage, integer(0), sizes, strides, pickle.NEWFALSE, hooks)


def parameter_with_state(state: bytes) -> bytes:
    fn = glob("torch._utils", "_rebuild_parameter_with_state")
    return call(fn, tensor(), pickle.NEWFALSE, empty_ordered_dict(), state)


def numpy_dtype(code: str) -> bytes:
    return call(glob("numpy", "dtype"), text(code), pickle.NEWFALSE, pickle.NEWTRUE)


def dtype_state(flags: int) -> bytes:
    """numpy's dtype state (version 3, '<', no subarray/names/fields, elsize -1, alignment -1, flags)."""
    return tup(integer(3), text("<"), pickle.NONE * 3, integer(-1) * 2, integer(flags))


# The attacks: name -> (pickle bytes, a word the refusal must contain).
BUILD_ON_FUNCTION = file_of(
    glob("torch._utils", "_rebuild_tensor_v2") + tup(pickle.NONE, dict_of(__defaults__=tup(integer(7)))) + pickle.BUILD
)
BUILD_ON_CLASS = file_of(
    glob("dnnlib.util", "EasyDict") + tup(pickle.NONE, dict_of(injected=integer(1))) + pickle.BUILD
)
ATTACKS = {
    "build-on-torch-function": (BUILD_ON_FUNCTION, "BUILD on the global torch._utils._rebuild_tensor_v2"),
    "build-on-easydict-class": (BUILD_ON_CLASS, "BUILD on the global dnnlib.util.EasyDict"),
    "build-dunder-on-easydict": (
        file_of(call(glob("dnnlib.util", "EasyDict")) + dict_of(__setstate__=integer(1)) + pickle.BUILD),
        "not plain attributes",
    ),
    "setitem-on-global": (
        file_of(glob("collections", "OrderedDict") + text("k") + integer(1) + pickle.SETITEM),
        "SETITEM on the global collections.OrderedDict",
    ),
    "parameter-shadows-detach": (
        file_of(parameter_with_state(dict_of(detach=text("shadowed")))),
        "parameter with attributes",
    ),
    "parameter-slot-state": (
        file_of(parameter_with_state(tup(pickle.NONE, dict_of(requires_grad=pickle.NEWTRUE)))),
        "parameter with attributes",
    ),
    "backward-hooks": (
        file_of(tensor(hooks=empty_ordered_dict() + integer(0) + glob("builtins", "set") + pickle.SETITEM)),
        "backward hooks",
    ),
    "huge-bytearray": (file_of(call(glob("builtins", "bytearray"), integer(10**12))), "bytearray"),
    "huge-bytearray8": (
        pickle.PROTO + b"\x05" + pickle.BYTEARRAY8 + struct.pack("<Q", 10**12) + pickle.STOP,
        "bytearray of 1000000000000 bytes",
    ),
    "huge-storage": (file_of(call(glob("torch", "FloatStorage"), integer(10**12))), "FloatStorage"),
    "huge-tensor-payload": (file_of(tensor(numel=10**12, size=(4,))), "asks for 4000000000000 bytes"),
    "tensor-larger-than-storage": (file_of(tensor(size=(10**6, 10**6), stride=(0, 0))), "larger than its storage"),
    "huge-numpy-shape": (
        file_of(
            call(
                glob("numpy._core.multiarray", "_reconstruct"),
                glob("numpy", "ndarray"),
                tup(integer(10**6), integer(10**6)),
                pickle.SHORT_BINBYTES + b"\x01b",
            )
        ),
        "numpy array of 1000000000000 bytes",
    ),
    "numpy-ndarray-called": (file_of(call(glob("numpy", "ndarray"), tup(integer(10**6), integer(10**6)))), "ndarray"),
    "object-dtype": (file_of(numpy_dtype("O")), "numpy dtype 'O'"),
    "object-scalar": (
        file_of(call(glob("numpy.core.multiarray", "scalar"), numpy_dtype("O"), glob("builtins", "set"))),
        "numpy dtype 'O'",
    ),
    "dtype-flags-hasobject": (
        file_of(numpy_dtype("f8") + dtype_state(1) + pickle.BUILD),
        "not that of a plain float64",
    ),
    "malicious-global-in-tensor-payload": (
        file_of(call(glob("torch.storage", "_load_from_bytes"), raw(pickle.dumps(os.system, protocol=2)))),
        "refused global 'posix.system'",
    ),
}


@pytest.fixture(scope="module")
def pristine(compat_dir):
    """What the attacks must leave as it was, and the fixture's weights before any attack."""
    return {
        "defaults": torch._utils._rebuild_tensor_v2.__defaults__,
        "easydict": dict(vars(EasyDict)),
        "f8_flags": np.dtype("f8").flags,
        "weights": {k: v.clone() for k, v in load_network(compat_dir / "official_small.pkl").state_dict().items()},
    }


def _assert_untouched(pristine: dict, compat_dir) -> None:
    assert torch._utils._rebuild_tensor_v2.__defaults__ == pristine["defaults"]
    assert dict(vars(EasyDict)) == pristine["easydict"]
    assert torch.nn.Parameter.detach is torch.Tensor.detach and "detach" not in vars(torch.nn.Parameter)
    assert np.dtype("f8").flags == pristine["f8_flags"] and not np.dtype("f8").hasobject
    state = load_network(compat_dir / "official_small.pkl").state_dict()
    assert state.keys() == pristine["weights"].keys()
    assert all(torch.equal(state[k], pristine["weights"][k]) for k in state)


def test_the_hand_written_pieces_are_valid(tmp_path):
    """Controls: the same pieces without the attack load, so each refusal is for the attack."""
    t = pickle.loads(file_of(tensor()))["G_ema"]
    assert isinstance(t, torch.Tensor) and t.shape == (4,)
    p = pickle.loads(file_of(parameter_with_state(pickle.NONE)))["G_ema"]
    assert isinstance(p, torch.nn.Parameter)
    assert pickle.loads(file_of(numpy_dtype("f8") + dtype_state(0) + pickle.BUILD))["G_ema"] == np.dtype("<f8")
    for value in (tensor(), parameter_with_state(pickle.NONE), numpy_dtype("f8") + dtype_state(0) + pickle.BUILD):
        path = tmp_path / "control.pkl"
        path.write_bytes(file_of(value))
        with pytest.raises(NetworkLoadError, match="not a network pickle"):
            load_network(path)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused_with_one_line(tmp_path, compat_dir, pristine, name):
    data, match = ATTACKS[name]
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(data)
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    assert match in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    usage_error("info", path, match=match)
    usage_error("sample", "--network", path, "--seeds", "0", "--outdir", tmp_path / "out", match=match)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    _assert_untouched(pristine, compat_dir)


def victim(a=1):
    return a


def test_the_build_payload_tampers_under_the_standard_unpickler():
    """Why BUILD is checked: pickle's own unpickler applies this state to the global itself."""
    here = f"{__name__}\nvictim".encode()
    try:
        pickle.loads(BUILD_ON_FUNCTION.replace(b"torch._utils\n_rebuild_tensor_v2", here))
        assert victim.__defaults__ == (7,)
    finally:
        victim.__defaults__ = (1,)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("fn", [os.system, open], ids=["os.system", "open"])
def test_torch_file_with_malicious_global_does_not_run(tmp_path, compat_dir, pristine, zipped, fn):
    marker = tmp_path / "pwned"
    payload = Payload(os.system, f"touch {marker}") if fn is os.system else Payload(open, str(marker), "w")
    path = tmp_path / "evil.pkl"
    data = {"format": "stylegen", "version": 1, "G_ema": {"config": payload, "state": collections.OrderedDict()}}
    torch.save(data, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    if zipped:  # a legacy file's first pickle is only torch's magic number: not a network pickle
        assert "refused global '" in str(e.value) and f".{fn.__name__}'" in str(e.value)
    usage_error("info", path)
    assert not marker.exists()
    _assert_untouched(pristine, compat_dir)


def _types_in(obj, seen: set) -> set:
    """Types of everything reachable through the containers and records of a read pickle."""
    if id(obj) in seen:
        return set()
    seen.add(id(obj))
    found = {type(obj)}
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    for child in children:
        found |= _types_in(child, seen)
    return found


@pytest.mark.parametrize("name", ["sg3t_small.pkl", "sg3r_small.pkl"])
def test_stylegen3_fixtures_still_read(compat_dir, name):
    """The numpy arrays, scalars, dtypes and EasyDicts of stylegan3's pickles pass every check."""
    from stylegen.formats.nvidia import Record, read_records

    with open(compat_dir / name, "rb") as f:
        data = read_records(f)
    assert isinstance(data["G_ema"], Record) and data["G_ema"].state["_init_kwargs"]["z_dim"] == 128
    types = _types_in(data, set())
    assert {EasyDict, np.ndarray, np.float64, torch.nn.Parameter} <= types


def test_snapshot_still_loads(tmp_path, make_generator):
    G = make_generator()
    stylegen.save_network(tmp_path / "ok.pkl", G=G, G_ema=G)
    G2 = load_network(tmp_path / "ok.pkl")
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))


@pytest.mark.parametrize(
    "changes",
    [{"img_resolution": 2**16, "channel_base": 2**20}, {"channel_base": 2**40}, {"w_dim": 10**7}, {"c_dim": 10**9}],
    ids=["resolution", "channels", "w_dim", "c_dim"],
)
def test_constructor_arguments_cannot_ask_for_a_huge_network(compat_dir, changes):
    """A file's _init_kwargs could ask for terabytes of weights (img_resolution 2**16 alone means
    16 GiB of noise buffers): the shapes they imply are checked against the file's tensors first."""
    with open(compat_dir / "official_small.pkl", "rb") as f:
        rec = nvidia.read_records(f)["G_ema"]
    kwargs = rec.state["_init_kwargs"]
    for key, value in changes.items():
        (kwargs if key in kwargs else kwargs["synthesis_kwargs"])[key] = value
    with pytest.raises(ValueError, match="weights do not match the constructor arguments"):
        nvidia.generator_from_record(rec)
