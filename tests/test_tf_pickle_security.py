"""Reading a TensorFlow network pickle never runs anything from it.

TF's own Network class executes `build_module_src` when unpickled; ours keeps the state dict and
never looks at the source. Every other way a pickle can run code or reach outside the objects it
builds (a REDUCE of a foreign global, BUILD on a global, NEWOBJ of something else) is refused
with one line naming the file, and nothing runs (marker-file checks).
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from cli_helpers import usage_error
from payloads import payloads
from tf_helpers import read_raw, set_variable, write_tf

from stylegen import NetworkLoadError, load_network


@pytest.fixture(scope="module")
def tf_path(compat_dir):
    return compat_dir / "tf_small.pkl"


def _refused(path, match: str, which: str = "G_ema") -> str:
    with pytest.raises(NetworkLoadError, match=match or None) as e:
        load_network(path, which)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
@pytest.mark.parametrize("where", ["variable", "static_kwargs", "build_module_src"])
def test_reduce_of_a_foreign_global_is_refused(tmp_path, tf_path, name, where):
    marker = tmp_path / "pwned"
    payload = payloads(marker)[name]
    G, D, Gs = read_raw(tf_path)
    if where == "variable":
        set_variable(Gs, "synthesis/4x4/Conv/noise_strength", payload)
    elif where == "static_kwargs":
        D.static_kwargs["structure"] = payload
    else:
        Gs.components["mapping"].build_module_src = payload
    path = write_tf(tmp_path / "evil.pkl", (G, D, Gs))
    glob = f"{payload.fn.__module__}.{payload.fn.__qualname__}"  # os.system pickles as posix.system
    raw = path.read_bytes()  # protocol 4 names a global by two strings (STACK_GLOBAL)
    assert payload.fn.__module__.encode() in raw and payload.fn.__qualname__.encode() in raw
    for which in ("G_ema", "G", "D"):
        _refused(path, f"refused global '{glob}'", which)
    usage_error("sample", "--network", path, "--seeds", "0", "--outdir", tmp_path, match=glob)
    assert not marker.exists()


def test_build_module_src_is_never_run(tmp_path, tf_path, compat_dir):
    marker = tmp_path / "pwned"
    src = f"open({str(marker)!r}, 'w').write('build_module_src ran')\nimport os\nos.system('touch {marker}')\n"
    G, D, Gs = read_raw(tf_path)
    for net in (G, D, Gs, *G.components.values(), *Gs.components.values()):
        net.build_module_src = src
    path = write_tf(tmp_path / "src.pkl", (G, D, Gs))
    assert str(marker).encode() in path.read_bytes()
    G2 = load_network(path)
    ref = load_network(tf_path)
    assert not marker.exists()
    assert G2.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in G2.state_dict().items())
    load_network(path, which="D")
    assert not marker.exists()


# Hand-written pickles: each opcode spelled out.
def _glob(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _text(s: str) -> bytes:
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _state(**items: bytes) -> bytes:
    return pickle.EMPTY_DICT + pickle.MARK + b"".join(_text(k) + v for k, v in items.items()) + pickle.SETITEMS


NETWORK = _glob("dnnlib.tflib.network", "Network")
NEW_NETWORK = NETWORK + pickle.EMPTY_TUPLE + pickle.NEWOBJ
STATE = _state(version=pickle.BININT1 + b"\x04", name=_text("Gs"))
FIRST = NEW_NETWORK + pickle.POP  # the first global is the network class: the TF reader reads the rest
ATTACKS = {
    "build-on-network-class": (NETWORK + STATE + pickle.BUILD, "BUILD on the global dnnlib.tflib.network.Network"),
    "build-on-numpy-dtype": (FIRST + _glob("numpy", "dtype") + STATE + pickle.BUILD, "BUILD on the global numpy.dtype"),
    "build-twice": (NEW_NETWORK + STATE + pickle.BUILD + STATE + pickle.BUILD, "already has its state"),
    "newobj-of-dtype": (
        FIRST + _glob("numpy", "dtype") + pickle.EMPTY_TUPLE + pickle.NEWOBJ,
        "NEWOBJ of the global numpy.dtype",
    ),
    "newobj-with-args": (NETWORK + pickle.MARK + _text("x") + pickle.TUPLE + pickle.NEWOBJ, "with arguments"),
    "reduce-of-network": (NETWORK + pickle.EMPTY_TUPLE + pickle.REDUCE, "called"),
    "setitem-on-network": (NEW_NETWORK + _text("k") + _text("v") + pickle.SETITEM, "SETITEM on a TFNetworkObject"),
    "slot-state": (NEW_NETWORK + pickle.NONE + STATE + pickle.TUPLE2 + pickle.BUILD, "not a dict of named fields"),
    "posix-system-after-network": (
        lambda m: FIRST + _glob("posix", "system") + _text(f"touch {m}") + pickle.TUPLE1 + pickle.REDUCE,
        "refused global 'posix.system'",
    ),
    "eval-after-network": (
        lambda m: FIRST + _glob("builtins", "eval") + _text(f"open({m!r}, 'w')") + pickle.TUPLE1 + pickle.REDUCE,
        "refused global 'builtins.eval'",
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_hand_written_attacks_are_refused(tmp_path, name):
    body, match = ATTACKS[name]
    marker = tmp_path / "MARKER"
    path = tmp_path / f"{name}.pkl"
    body = body(str(marker)) if callable(body) else body
    path.write_bytes(pickle.PROTO + b"\x04" + body + pickle.STOP)
    _refused(path, match)
    usage_error("info", path, match=match.split("'")[0])
    assert not marker.exists()
    assert np.dtype("float32").hasobject is False  # numpy's shared dtypes untouched


@pytest.mark.parametrize("cut", [3, 60, 1000, 100_000, 6_000_000, -1])
def test_truncated_tf_pickle(tmp_path, tf_path, cut):
    path = tmp_path / "cut.pkl"
    data = tf_path.read_bytes()
    path.write_bytes(data[:cut])
    for which in ("G_ema", "D"):
        _refused(path, "", which)


def test_corrupt_tf_pickle(tmp_path, tf_path):
    data = bytearray(tf_path.read_bytes())
    for offset in (40, 300, 20_000, len(data) // 2):
        bad = bytearray(data)
        bad[offset : offset + 64] = b"\xff" * 64
        path = tmp_path / f"bad{offset}.pkl"
        path.write_bytes(bytes(bad))
        try:
            net = load_network(path)
        except NetworkLoadError as e:
            assert str(path) in str(e) and "\n" not in str(e)
        else:  # the bytes hit array data: a network of the right shape still loads
            assert net.img_resolution == 32
