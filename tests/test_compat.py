"""NVIDIA compatibility: the official fixture's pixels, and loading their pickles safely."""

from __future__ import annotations

import collections
import pickle
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from payloads import payloads

import stylegen
from stylegen import NetworkLoadError, load_network, seed_to_z, to_uint8


@pytest.fixture(scope="module")
def reference(compat_dir):
    with np.load(compat_dir / "official_small_ref.npz") as d:
        return {k: d[k] for k in d.files}


def _settings(ref):
    for s, (psi, cutoff) in enumerate(zip(ref["psis"], ref["cutoffs"])):
        yield s, float(psi), None if cutoff < 0 else int(cutoff)


def test_fixture_z_is_seed_to_z(reference):
    z = np.concatenate([seed_to_z(int(s), reference["z"].shape[1]).numpy() for s in reference["seeds"]])
    np.testing.assert_array_equal(z, reference["z"])
    assert (reference["labels"] < 0).all(), "the fixture is unconditional; labels would need one-hot c"


@pytest.mark.parametrize("form", ["nvidia", "frozen"])
@pytest.mark.parametrize("batched", [True, False], ids=["batch", "single"])
def test_official_fixture_pixels(compat_dir, reference, ops_impl, batched, form):
    """NVIDIA's arithmetic (the loaded Generator) and our inference form (G.freeze()) alike."""
    G = load_network(compat_dir / "official_small.pkl")
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    if form == "frozen":
        G = G.freeze()
    z = torch.from_numpy(reference["z"])
    groups = [z] if batched else list(z.split(1))
    for s, psi, cutoff in _settings(reference):
        with torch.inference_mode():
            ws = torch.cat([G.mapping(zz, None, truncation_psi=psi, truncation_cutoff=cutoff) for zz in groups])
            img = torch.cat([G.synthesis(w, noise_mode="const") for w in ws.split(len(groups[0]))])
        ref_ws, ref_img = torch.from_numpy(reference["ws"][s]), torch.from_numpy(reference["images"][s])
        assert (ws - ref_ws).abs().max() <= 1e-4, f"ws, setting {s}"
        assert (img - ref_img).abs().max() <= 1e-4, f"images, setting {s}"
        diff = (to_uint8(img).int() - to_uint8(ref_img).int()).abs()
        assert diff.max() <= 1, f"uint8 images, setting {s}"


def test_generator_call_matches_fixture(compat_dir, reference):
    G = load_network(compat_dir / "official_small.pkl")
    with torch.no_grad():
        img = G(torch.from_numpy(reference["z"]), truncation_psi=1)
    assert (img - torch.from_numpy(reference["images"][0])).abs().max() <= 1e-4


def test_fixture_discriminator_loads_for_fine_tuning(compat_dir):
    """NVIDIA's D rebuilds as our Discriminator with every weight, and runs."""
    from stylegen.formats.nvidia import collect_state, read_records
    from stylegen.networks.discriminator import Discriminator

    D = load_network(compat_dir / "official_small.pkl", which="D")
    assert isinstance(D, Discriminator) and D.img_resolution == 32 and D.img_channels == 3
    with open(compat_dir / "official_small.pkl", "rb") as f:
        theirs = collect_state(read_records(f)["D"])
    ours = D.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    with torch.no_grad():
        logits = D(torch.randn([4, 3, 32, 32]))
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()


def test_truncated_nvidia_pickle(compat_dir, tmp_path):
    path = tmp_path / "cut.pkl"
    data = (compat_dir / "official_small.pkl").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# Security: nothing from the file runs.


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
def test_malicious_global_is_refused(tmp_path, name):
    marker = tmp_path / "pwned"
    payload = payloads(marker)[name]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": payload, "G": None}))
    glob = f"{payload.fn.__module__}.{payload.fn.__qualname__}"  # os.system pickles as posix.system
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    msg = str(e.value)
    assert f"'{glob}'" in msg and str(path) in msg and "\n" not in msg
    assert not marker.exists()


def test_persistent_id_is_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage0" if isinstance(obj, bytes) else None

    path = tmp_path / "pid.pkl"
    with open(path, "wb") as f:
        P(f).dump({"G_ema": b"x"})
    with pytest.raises(NetworkLoadError, match="persistent id"):
        load_network(path)


# A hand-made NVIDIA-format pickle: fake `torch_utils.persistence` and `dnnlib.util` modules exist
# only while writing, so the file carries exactly the globals NVIDIA's files carry.


@pytest.fixture
def nvidia_writer(monkeypatch):
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called: only its name is pickled
        raise AssertionError("unreachable")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    for name, mod in [("torch_utils", types.ModuleType("torch_utils")), (persistence.__name__, persistence)]:
        monkeypatch.setitem(sys.modules, name, mod)
    for name, mod in [("dnnlib", types.ModuleType("dnnlib")), (util.__name__, util)]:
        monkeypatch.setitem(sys.modules, name, mod)

    class Persistent:
        def __init__(self, meta):
            self.meta = meta

        def __reduce__(self):
            return _reconstruct_persistent_obj, (self.meta,)

    def wrap(module, module_src, class_names=None, init_kwargs=None):
        """Persistent object tree of a module, like NVIDIA's persistence.persistent_class."""
        class_names = class_names or {}

        def below(n):  # class_names of the sub-module n, relative to it
            return {k[len(n) + 1 :]: v for k, v in class_names.items() if f"{k}.".startswith(f"{n}.")}

        subs = collections.OrderedDict((n, wrap(m, module_src, below(n))) for n, m in module._modules.items())
        state = {
            "training": False,
            "_parameters": collections.OrderedDict(module._parameters),
            "_buffers": collections.OrderedDict(module._buffers),
            "_modules": subs,
            "_init_args": (),
            "_init_kwargs": EasyDict(init_kwargs or {}),
        }
        name = class_names.get("", type(module).__name__)
        meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": name, "state": state}
        return Persistent(meta)

    def write(path, G, module_src="", class_names=None, init_kwargs=None):
        cfg = G.config
        kwargs = init_kwargs or {
            "z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim, "img_resolution": cfg.img_resolution,
            "img_channels": cfg.img_channels, "mapping_kwargs": EasyDict(num_layers=cfg.mapping_layers),
            "synthesis_kwargs": EasyDict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=2),
        }  # fmt: skip
        net = wrap(G, module_src, class_names, kwargs)
        path.write_bytes(pickle.dumps({"G": net, "D": None, "G_ema": net, "augment_pipe": None}))
        return path

    return write


def test_module_src_is_never_run(tmp_path, make_generator, nvidia_writer):
    marker = tmp_path / "pwned"
    src = f"open({str(marker)!r}, 'w').write('module_src ran')\nimport os; os.system('touch {marker}')\n"
    G = make_generator(c_dim=3)
    path = nvidia_writer(tmp_path / "nv.pkl", G, module_src=src)
    raw = path.read_bytes()
    assert b"torch_utils.persistence" in raw and b"dnnlib.util" in raw and str(marker).encode() in raw
    G2 = load_network(path)
    assert not marker.exists()
    assert G2.config.c_dim == 3 and G2.config.mapping_layers == G.config.mapping_layers
    z, c = torch.randn([2, G.z_dim]), torch.eye(3)[:2]
    with torch.no_grad():
        assert torch.equal(G2(z, c), G(z, c))


def test_stylegen3_networks_are_refused(tmp_path, make_generator, nvidia_writer):
    path = nvidia_writer(tmp_path / "sg3.pkl", make_generator(), class_names={"synthesis.b4": "SynthesisInput"})
    with pytest.raises(NetworkLoadError, match="SynthesisInput.*StyleGAN3"):
        load_network(path)


TINY_KWARGS = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 16, "img_channels": 3}


@pytest.mark.parametrize(
    "synthesis_kwargs, match",
    [({"architecture": "resnet"}, "architecture 'resnet'"), ({"bogus_option": 1}, "bogus_option")],
)
def test_unsupported_options_are_refused(tmp_path, make_generator, nvidia_writer, synthesis_kwargs, match):
    G = make_generator()
    kwargs = {**TINY_KWARGS, "synthesis_kwargs": synthesis_kwargs}
    path = nvidia_writer(tmp_path / "opt.pkl", G, init_kwargs=kwargs)
    with pytest.raises(NetworkLoadError, match=match):
        load_network(path)


def test_nvidia_weights_must_match(tmp_path, make_generator, nvidia_writer):
    G = make_generator()
    kwargs = {**TINY_KWARGS, "mapping_kwargs": {"num_layers": 3}}
    path = nvidia_writer(tmp_path / "mismatch.pkl", G, init_kwargs=kwargs)
    with pytest.raises(NetworkLoadError, match="missing mapping.fc2.weight"):
        load_network(path)


def test_public_api_exports():
    for name in ["load_network", "save_network", "load_snapshot", "seed_to_z", "to_uint8", "NetworkLoadError"]:
        assert hasattr(stylegen, name)
    assert issubclass(NetworkLoadError, ValueError)


@pytest.mark.parametrize("name", ["official_small.pkl", "sg3t_small.pkl", "tf_small.pkl"])
def test_loading_nvidia_pickles_warns_of_nothing(compat_dir, name):
    """Every tensor of a pickle passes the storage-size check without torch's TypedStorage
    deprecation warning (printed on every `stylegen` command that loads such a file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_network(compat_dir / name)


@pytest.mark.filterwarnings("ignore::stylegen.formats.rosinality.RosinalityWarning")
@pytest.mark.parametrize(
    "name, which",
    [
        ("official_small.pkl", "G_ema"),
        ("official_small.pkl", "D"),
        ("tf_small.pkl", "G_ema"),
        ("sg3t_small.pkl", "G_ema"),
        ("sg3r_small.pkl", "D"),
        ("rosinality_small.pt", "G_ema"),  # no latent_avg: w_avg estimated from z of its own
        ("ours", "G_ema"),
    ],
)
def test_loading_leaves_torchs_random_state_alone(compat_dir, tmp_path, name, which):
    """Building the modules draws their initial weights from torch's generator; a load must not
    show that: `torch.manual_seed(s)`, a load, `torch.randn` gives the z it gives without the load."""
    path = compat_dir / name
    if name == "ours":
        path = tmp_path / "ours.pkl"
        stylegen.save_network(path, G_ema=load_network(compat_dir / "sg3t_small.pkl"))
    torch.manual_seed(123)
    want = torch.randn(8)
    torch.manual_seed(123)
    load_network(path, which)
    assert torch.equal(torch.randn(8), want)
