"""A small writer of NVIDIA TensorFlow network pickles for the tests, and the fixture's raw data.

A fake `dnnlib.tflib.network` module exists only while a file is written, so the file carries
exactly the globals TF's own files carry: the Network class (class, empty tuple, NEWOBJ, state
dict, BUILD), numpy arrays, dtypes and scalars. The fixture's data is read with stylegen's
guarded unpickler (`TFUnpickler`: data only, nothing run) and written back changed, so the
fixture itself is never modified.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

from stylegen.formats.tf_pickle import TFNetworkObject, TFUnpickler


class Network:
    """What pickle needs to write a dnnlib.tflib.network.Network: a class of that name whose
    __dict__ is the state (the default reduce gives NEWOBJ with no arguments, then BUILD)."""

    def __init__(self, **state):
        self.__dict__.update(state)


Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"


@contextlib.contextmanager
def _fake_tf_module():
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["dnnlib.tflib.network"].Network = Network
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def write_tf(path: Path, obj, protocol: int = 4) -> Path:
    """Pickle obj (a tuple of Network objects, or one) as TF's code did."""
    with _fake_tf_module():
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def read_raw(path: Path):
    """The fixture's (G, D, Gs) as Network objects holding the file's state dicts, unchanged."""
    with open(path, "rb") as f:
        data = TFUnpickler(f).load()
    return tuple(_to_network(n) for n in data)


def _to_network(obj: TFNetworkObject) -> Network:
    state = dict(obj.state)
    state["components"] = {k: _to_network(v) for k, v in state["components"].items()}
    state["variables"] = list(state["variables"])
    state["static_kwargs"] = dict(state["static_kwargs"])
    return Network(**state)


def flat_variables(net: Network, prefix: str = "") -> dict[str, np.ndarray]:
    """TF's flat name space: own variables, then each component's under 'key/'."""
    out = {prefix + name: np.asarray(v) for name, v in net.variables}
    for key, comp in net.components.items():
        out.update(flat_variables(comp, f"{prefix}{key}/"))
    return out


def set_variable(net: Network, flat_name: str, value) -> None:
    """Replace the value of one variable (flat name) of net, in place."""
    head, _, rest = flat_name.partition("/")
    if head in net.components:
        return set_variable(net.components[head], rest, value)
    net.variables = [(n, value if n == flat_name else v) for n, v in net.variables]


# ---------------------------------------------------------------------------------------------
# Our networks written in TF's layout: the inverse of docs/formats.md's table, written out here
# independently of the loader.


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float32)


def _tf_conv(w: torch.Tensor, flip: bool = False) -> np.ndarray:
    k = _np(w).transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
    return np.ascontiguousarray(k[::-1, ::-1] if flip else k)


def tf_generator(G, name: str, static_kwargs: dict, version: int = 5, src: str = "# build code") -> Network:
    sd = G.state_dict()
    R = G.img_resolution
    synth, noise = [], []
    layers = [(4, "Conv", "conv1")] + [
        (r, tf, ours)
        for r in [2**k for k in range(3, R.bit_length())]
        for tf, ours in [("Conv0_up", "conv0"), ("Conv1", "conv1")]
    ]
    for i, (r, _, ours) in enumerate(layers):
        noise.append((f"noise{i}", _np(sd[f"synthesis.b{r}.{ours}.noise_const"])[None, None]))
    synth.append(("4x4/Const/const", _np(sd["synthesis.b4.const"])[None]))
    # 'orig' / 'resnet' generators have one torgb (the last block's) and, for 'resnet', a Skip
    # 1x1 conv per block r > 4 after Conv1 (TF's creation order, docs/formats.md).
    torgbs = [(r, "ToRGB", "torgb") for r in [2**k for k in range(2, R.bit_length())]]
    skips = [(r, "Skip", "skip") for r in [2**k for k in range(2, R.bit_length())]]
    order = [layers[0], torgbs[0]] + [
        x for k in range(1, len(torgbs)) for x in (layers[2 * k - 1], layers[2 * k], skips[k], torgbs[k])
    ]
    order = [(r, tf, ours) for r, tf, ours in order if f"synthesis.b{r}.{ours}.weight" in sd]
    for r, tf, ours in order:
        p = f"synthesis.b{r}.{ours}."
        if tf == "Skip":  # no bias, no modulation; flipped like Conv0_up
            synth.append((f"{r}x{r}/Skip/weight", _tf_conv(sd[p + "weight"], flip=True)))
            continue
        synth.append((f"{r}x{r}/{tf}/weight", _tf_conv(sd[p + "weight"], flip=tf == "Conv0_up")))
        synth.append((f"{r}x{r}/{tf}/mod_weight", _np(sd[p + "affine.weight"]).T.copy()))
        synth.append((f"{r}x{r}/{tf}/mod_bias", _np(sd[p + "affine.bias"]) - np.float32(1)))
        if tf != "ToRGB":
            synth.append((f"{r}x{r}/{tf}/noise_strength", np.float32(sd[p + "noise_strength"].item())))
        synth.append((f"{r}x{r}/{tf}/bias", _np(sd[p + "bias"])))
    mapping = []
    if G.c_dim:
        mapping += [
            ("LabelEmbed/weight", _np(sd["mapping.embed.weight"]).T.copy()),
            ("LabelEmbed/bias", _np(sd["mapping.embed.bias"])),
        ]
    for i in range(G.config.mapping_layers):
        mapping += [
            (f"Dense{i}/weight", _np(sd[f"mapping.fc{i}.weight"]).T.copy()),
            (f"Dense{i}/bias", _np(sd[f"mapping.fc{i}.bias"])),
        ]
    common = {"version": version, "static_kwargs": dict(static_kwargs), "build_module_src": src}
    comps = {
        "synthesis": Network(
            name="G_synthesis", components={}, build_func_name="G_synthesis", variables=noise + synth, **common
        ),
        "mapping": Network(name="G_mapping", components={}, build_func_name="G_mapping", variables=mapping, **common),
    }
    top = [("dlatent_avg", _np(sd["mapping.w_avg"]))]
    return Network(name=name, components=comps, build_func_name="G_main", variables=top, **common)


def tf_discriminator(D, static_kwargs: dict, version: int = 5) -> Network:
    sd, R = D.state_dict(), D.img_resolution
    v = [
        (f"{R}x{R}/FromRGB/weight", _tf_conv(sd[f"b{R}.fromrgb.weight"])),
        (f"{R}x{R}/FromRGB/bias", _np(sd[f"b{R}.fromrgb.bias"])),
    ]
    for r in [2**k for k in range(R.bit_length() - 1, 2, -1)]:
        for tf, ours in [("Conv0", "conv0"), ("Conv1_down", "conv1")]:
            v += [
                (f"{r}x{r}/{tf}/weight", _tf_conv(sd[f"b{r}.{ours}.weight"])),
                (f"{r}x{r}/{tf}/bias", _np(sd[f"b{r}.{ours}.bias"])),
            ]
        v.append((f"{r}x{r}/Skip/weight", _tf_conv(sd[f"b{r}.skip.weight"])))
    if D.c_dim:
        v += [
            ("LabelEmbed/weight", _np(sd["mapping.embed.weight"]).T.copy()),
            ("LabelEmbed/bias", _np(sd["mapping.embed.bias"])),
        ]
        for i in range(D.config.mapping_layers):
            v += [(f"Mapping{i}/weight", _np(sd[f"mapping.fc{i}.weight"]).T.copy())]
            v += [(f"Mapping{i}/bias", _np(sd[f"mapping.fc{i}.bias"]))]
    v += [("4x4/Conv/weight", _tf_conv(sd["b4.conv.weight"])), ("4x4/Conv/bias", _np(sd["b4.conv.bias"]))]
    for tf, ours in [("4x4/Dense0", "b4.fc"), ("Output", "b4.out")]:
        v += [(f"{tf}/weight", _np(sd[f"{ours}.weight"]).T.copy()), (f"{tf}/bias", _np(sd[f"{ours}.bias"]))]
    return Network(
        name="D", version=version, static_kwargs=dict(static_kwargs), components={}, build_module_src="# build code",
        build_func_name="D_main", variables=v,
    )  # fmt: skip
