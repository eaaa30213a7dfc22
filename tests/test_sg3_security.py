"""StyleGAN3-shaped pickles that would run code: nothing from them runs, one `Error:` line each.

NVIDIA's own loader executes each persistent object's `module_src` (stylegan3's
`training/networks_stylegan3.py`, embedded in the pickle) and calls whatever globals the pickle
names. These files are made the way NVIDIA's are (a `torch_utils.persistence` reconstructor per
module, its source embedded), with an attack in the source or in the state.
"""

from __future__ import annotations

import pickle
import sys
import types

import pytest
import torch
from cli_helpers import usage_error
from payloads import payloads

from stylegen import NetworkLoadError, load_network
from stylegen.formats.nvidia import read_records


class _Persistent:
    """Pickles like a persistent_class instance: _reconstruct_persistent_obj(meta)."""

    def __init__(self, fn, meta):
        self.fn, self.meta = fn, meta

    def __reduce__(self):
        return self.fn, (self.meta,)


def _sg3_shaped_pickle(state_of, module_src: str) -> bytes:
    """{'G_ema': Generator(synthesis=SynthesisNetwork(input=SynthesisInput ...))}: state_of(class) -> extra state."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # pickled by reference only; never called here
        raise AssertionError("not called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"], sys.modules["torch_utils.persistence"] = types.ModuleType("torch_utils"), persistence

    def obj(cls, modules, **state):
        meta = {
            "type": "class",
            "version": 6,
            "module_src": module_src,
            "class_name": cls,  # as persistence stores it: the bare class name
            "state": {"_modules": modules, "training": False, **state, **state_of(cls)},
        }
        return _Persistent(_reconstruct_persistent_obj, meta)

    try:
        inp = obj(
            "SynthesisInput", {}, channels=4, size=[8, 8], sampling_rate=16.0, bandwidth=2.0, weight=torch.zeros(4, 4)
        )
        syn = obj("SynthesisNetwork", {"input": inp}, layer_names=[])
        G = obj("Generator", {"synthesis": syn}, _init_kwargs={"z_dim": 4, "c_dim": 0, "w_dim": 4})
        return pickle.dumps({"G_ema": G, "G": G}, protocol=3)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
def test_payload_in_a_stylegan3_state_does_not_run(tmp_path, how):
    marker = tmp_path / "pwned"
    attack = payloads(marker)[how]
    data = _sg3_shaped_pickle(lambda cls: {"freqs": attack} if cls == "SynthesisInput" else {}, "")
    path = tmp_path / "sg3-evil.pkl"
    path.write_bytes(data)
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    assert "refused global" in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    usage_error("info", path, match="refused global")
    usage_error("sample", "--network", path, "--seeds", "0", "--outdir", tmp_path / "out", match="refused global")
    assert not marker.exists()


def test_module_source_is_never_executed(tmp_path):
    """The embedded source would create the marker when exec'd, as NVIDIA's loader does."""
    marker = tmp_path / "pwned"
    data = _sg3_shaped_pickle(lambda cls: {}, f"open({str(marker)!r}, 'w').close()\nclass Generator: pass\n")
    path = tmp_path / "sg3-src.pkl"
    path.write_bytes(data)
    assert b"open(" in data  # the attack is in the file
    records = read_records(path.open("rb"))
    assert records["G_ema"].class_name == "Generator"
    with pytest.raises(NetworkLoadError) as e:  # an incomplete StyleGAN3 generator: refused, one line
        load_network(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    usage_error("info", path)
    assert not marker.exists()
