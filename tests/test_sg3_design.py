"""StyleGAN3 generators designed from scratch: layer specs and NVIDIA's initialisation (the
low-pass filters against scipy: tests/test_sg3_filters.py).

Oracles: the layer specs and filters stored in NVIDIA's pickles
(`sg3t_small.pkl`, `sg3r_small.pkl`, their JSON), the fixtures' G (NVIDIA's constructors at
`torch.manual_seed(0)`), and NVIDIA's own printout of its 1024 px StyleGAN3-T synthesis network
(`print(G.synthesis)`: extra_repr with %g, 6 significant digits) and layer names of its 256 px nets.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

import stylegen
from stylegen import load_network
from stylegen.errors import InputError
from stylegen.networks.sg3_design import (
    design_config3,
    init_generator3,
    layer_filters,
    train_preset_kwargs,
)
from stylegen.networks.sg3_generator import Generator3, Generator3Config

NETS = ["sg3t_small", "sg3r_small"]
# NVIDIA's init from the same torch seed: torch's CPU randn/exp/pow kernels round differently per
# CPU capability and version (measured: 1.8e-6 between ATEN_CPU_CAPABILITY default and avx2, 1 ulp
# in the Fourier frequencies between torch 2.13 and 2.14); another draw order gives O(1).
INIT_TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(autouse=True)
def _ref_ops(monkeypatch):
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


def _nvidia_kwargs(meta: dict) -> dict:
    """NVIDIA's Generator kwargs from the fixture JSON, mapping_kwargs flattened."""
    kwargs = dict(meta["G_init_kwargs"])
    mapping = kwargs.pop("mapping_kwargs")
    rename = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier", "w_avg_beta": "w_avg_beta"}
    kwargs.update({rename[k]: v for k, v in mapping.items()})
    return kwargs


@pytest.fixture(scope="module", params=NETS)
def fixture(request, compat_dir):
    name = request.param
    meta = json.loads((compat_dir / f"{name}.json").read_text())
    return {"name": name, "path": compat_dir / f"{name}.pkl", "meta": meta, "kwargs": _nvidia_kwargs(meta)}


@pytest.fixture(scope="module")
def loaded(fixture):
    return load_network(fixture["path"])


def _tiny(architecture="stylegan3-t", **kw):
    cfg = dict(z_dim=8, w_dim=8, img_resolution=16, channel_base=128, channel_max=8, num_layers=4)
    cfg.update(kw)
    return design_config3(architecture=architecture, **cfg)


# ---------------------------------------------------------------------------------------------
# Layer specs


def test_design_reproduces_the_pickles_layer_specs(fixture, loaded):
    """Every field of every LayerSpec (names, sizes, channels, rates, cutoffs, half-widths, taps,
    padding, radial flags, clamp, EMA decay) and the input spec, as the loader reads them."""
    cfg = design_config3(**fixture["kwargs"])
    assert cfg.input == loaded.config.input
    for got, want in zip(cfg.layers, loaded.config.layers):
        differ = [f.name for f in dataclasses.fields(got) if getattr(got, f.name) != getattr(want, f.name)]
        assert not differ, f"{want.name}: {differ}"
    assert cfg == loaded.config
    assert cfg.architecture == fixture["meta"]["cfg"]
    for spec, want in zip(cfg.layers, fixture["meta"]["network"]["layers"]):  # the JSON: NVIDIA's attributes
        assert (spec.in_half_width, spec.out_half_width) == (want["in_half_width"], want["out_half_width"])
        assert (spec.in_cutoff, spec.out_cutoff) == (want["in_cutoff"], want["out_cutoff"])


def test_train_preset_kwargs_are_train_pys(fixture, loaded):
    """The fixtures' train.py command lines (T: --cbase 2048 --cmax 64; R: --cbase 1024 --cmax 64,
    which train.py doubles for -r), --batch 32, --map-depth 2, give the pickles' Generator kwargs."""
    meta = fixture["meta"]
    cbase = 1024 if meta["cfg"] == "stylegan3-r" else 2048
    kwargs = train_preset_kwargs(meta["cfg"], cbase=cbase, cmax=64, batch_size=32, map_depth=2)
    nvidia = meta["G_init_kwargs"]
    for key in ("channel_base", "channel_max", "magnitude_ema_beta"):
        assert kwargs[key] == nvidia[key], key
    assert kwargs["mapping_layers"] == nvidia["mapping_kwargs"]["num_layers"]
    cfg = design_config3(z_dim=128, w_dim=128, img_resolution=nvidia["img_resolution"], **kwargs)
    assert cfg == loaded.config


# NVIDIA's print(G.synthesis) of its StyleGAN3-T 1024 px network (default kwargs): per layer
# name, in/out rate, in/out cutoff, in/out half-width, in/out size, critically sampled.
T1024 = [
    ("L0_36_512", 16, 16, 2, 2, 6, 6, 36, 36, False),
    ("L1_36_512", 16, 16, 2, 3.1748, 6, 4.8252, 36, 36, False),
    ("L2_52_512", 16, 32, 3.1748, 5.03968, 4.8252, 10.9603, 36, 52, False),
    ("L3_52_512", 32, 32, 5.03968, 8, 10.9603, 8, 52, 52, False),
    ("L4_84_512", 32, 64, 8, 12.6992, 8, 19.3008, 52, 84, False),
    ("L5_148_512", 64, 128, 12.6992, 20.1587, 19.3008, 43.8413, 84, 148, False),
    ("L6_148_512", 128, 128, 20.1587, 32, 43.8413, 32, 148, 148, False),
    ("L7_276_323", 128, 256, 32, 50.7968, 32, 77.2032, 148, 276, False),
    ("L8_276_203", 256, 256, 50.7968, 80.6349, 77.2032, 47.3651, 276, 276, False),
    ("L9_532_128", 256, 512, 80.6349, 128, 47.3651, 128, 276, 532, False),
    ("L10_1044_81", 512, 1024, 128, 203.187, 128, 308.813, 532, 1044, False),
    ("L11_1044_51", 1024, 1024, 203.187, 322.54, 308.813, 189.46, 1044, 1044, False),
    ("L12_1044_32", 1024, 1024, 322.54, 512, 189.46, 118.346, 1044, 1044, True),
    ("L13_1024_32", 1024, 1024, 512, 512, 118.346, 118.346, 1044, 1024, True),
    ("L14_1024_3", 1024, 1024, 512, 512, 118.346, 118.346, 1024, 1024, True),
]


def test_1024px_t_is_nvidias_printout():
    cfg = design_config3(img_resolution=1024)
    assert cfg.input == type(cfg.input)(512, (36, 36), 16.0, 2.0)
    assert cfg.num_ws == 16 and len(cfg.layers) == len(T1024)
    for spec, want in zip(cfg.layers, T1024):
        name, r_in, r_out, c_in, c_out, h_in, h_out, s_in, s_out, critical = want
        assert spec.name == name
        assert (spec.in_sampling_rate, spec.out_sampling_rate) == (r_in, r_out), name
        assert (spec.in_size, spec.out_size) == ((s_in, s_in), (s_out, s_out)), name
        assert spec.is_critically_sampled == critical and spec.is_torgb == (name == "L14_1024_3")
        got = [float(f"{v:g}") for v in (spec.in_cutoff, spec.out_cutoff, spec.in_half_width, spec.out_half_width)]
        assert got == [c_in, c_out, h_in, h_out], name
    # FORMAT.md's padding of the default T layout: same rate, rate doubling, the crop to R, RGB.
    pads = {s.name: s.padding for s in cfg.layers}
    assert pads["L0_36_512"] == (9, 8, 9, 8) and pads["L2_52_512"] == (-6, -9, -6, -9)
    assert pads["L13_1024_32"] == (-11, -12, -11, -12) and pads["L14_1024_3"] == (0, 0, 0, 0)
    assert {(s.up_taps, s.down_taps) for s in cfg.layers[:-1]} == {(12, 12), (24, 12)}


def test_256px_names_of_nvidias_released_networks():
    """Layer names of NVIDIA's stylegan3-t/-r-ffhqu-256x256 (train.py --cbase 16384)."""
    t = design_config3(img_resolution=256, **train_preset_kwargs("stylegan3-t", cbase=16384))
    assert [s.name for s in t.layers] == [
        "L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512", "L4_52_512", "L5_84_512", "L6_84_512",
        "L7_148_362", "L8_148_256", "L9_148_181", "L10_276_128", "L11_276_91", "L12_276_64",
        "L13_256_64", "L14_256_3",
    ]  # fmt: skip
    r = design_config3(img_resolution=256, **train_preset_kwargs("stylegan3-r", cbase=16384))
    assert [s.name for s in r.layers] == [
        "L0_36_1024", "L1_36_1024", "L2_36_1024", "L3_52_1024", "L4_52_1024", "L5_84_1024",
        "L6_84_1024", "L7_148_724", "L8_148_512", "L9_148_362", "L10_276_256", "L11_276_181",
        "L12_276_128", "L13_256_128", "L14_256_3",
    ]  # fmt: skip
    assert r.architecture == "stylegan3-r" and t.architecture == "stylegan3-t"
    assert all(s.conv_kernel == 1 for s in r.layers) and {s.conv_kernel for s in t.layers} == {3, 1}
    assert [s.down_radial for s in r.layers] == [True] * 12 + [False] * 3
    assert not any(s.down_radial for s in t.layers)


def test_128px_r_by_hand():
    """R = 128, 14 layers, 2 critical: e_i = min(i / 12, 1), f_c = 2 * 32 ** e_i, channels =
    rint(min(65536 / 2 / f_c, 1024)); the last two layers are 128 px, the first 16 + 2 * 10."""
    cfg = design_config3(img_resolution=128, **train_preset_kwargs("stylegan3-r"))
    names = [s.name for s in cfg.layers]
    assert len(names) == 15 and cfg.num_ws == 16
    assert names[0] == "L0_36_1024" and names[-2:] == ["L13_128_512", "L14_128_3"]
    # i = 10: f_c = 2 * 32 ** (10 / 12) = 35.919 -> 32768 / 35.919 = 912.27 -> 912 channels
    assert cfg.layers[10].out_channels == 912 and cfg.layers[10].out_cutoff == pytest.approx(35.9188, abs=1e-4)
    assert cfg.layers[12].out_cutoff == 64 and cfg.layers[12].is_critically_sampled
    assert cfg.layers[-1].padding == (0, 0, 0, 0) and cfg.layers[-1].out_channels == 3


def test_design_options():
    assert design_config3(img_resolution=16, conv_clamp=None).conv_clamp is None
    cfg = _tiny(c_dim=5, img_channels=1, mapping_layers=3)
    assert (cfg.c_dim, cfg.img_channels, cfg.mapping_layers, len(cfg.layers)) == (5, 1, 3, 5)
    assert cfg.layers[-1].name.endswith("_1") and cfg.num_ws == 6
    r_like = _tiny(conv_kernel=1, use_radial_filters=True)  # NVIDIA's kwargs without `architecture`
    assert r_like == _tiny("stylegan3-r")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"architecture": "stylegan3"}, "architecture"),
        ({"img_resolution": 48}, "img_resolution"),
        ({"img_resolution": 2}, "img_resolution"),
        ({"num_critical": 4}, "num_critical"),
        ({"channel_max": 0}, "channel_max"),
        ({"conv_kernel": 0}, "conv_kernel"),
        ({"first_cutoff": -1}, "first_cutoff"),
        ({"magnitude_ema_beta": 1.5}, "magnitude_ema_beta"),
        ({"conv_clamp": 0}, "conv_clamp"),
        ({"first_cutoff": 20}, "cutoff"),  # above half the rate of its filters
    ],
)
def test_bad_design_arguments_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        _tiny(**kwargs)


def test_config_round_trips_and_old_snapshots_still_load():
    cfg = _tiny("stylegan3-r")
    assert Generator3Config.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()  # a snapshot written before the half-widths were recorded
    for layer in old["layers"]:
        del layer["in_half_width"], layer["out_half_width"]
    legacy = Generator3Config.from_dict(old)
    assert legacy.layers[0].in_half_width is None
    with pytest.raises(ValueError, match="half-widths"):
        init_generator3(legacy)


# ---------------------------------------------------------------------------------------------
# NVIDIA's initialisation


def test_init_filters_equal_the_pickles(fixture, loaded):
    G = init_generator3(design_config3(**fixture["kwargs"]))
    for name in loaded.synthesis.layer_names:
        for buf in ("up_filter", "down_filter"):
            want, got = getattr(getattr(loaded.synthesis, name), buf), getattr(getattr(G.synthesis, name), buf)
            assert (want is None) == (got is None), (name, buf)
            if want is not None:
                assert got.shape == want.shape and (got - want).abs().max() <= 1e-7, (name, buf)


def test_init_is_nvidias_from_the_same_seed(fixture):
    """The fixtures' G is NVIDIA's Generator right after torch.manual_seed(0)."""
    want = load_network(fixture["path"], which="G").state_dict()
    got = init_generator3(design_config3(**fixture["kwargs"]), seed=0).state_dict()
    assert set(got) == set(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], **INIT_TOL, msg=lambda m, key=key: f"{key}: {m}")
    assert torch.equal(got["synthesis.input.affine.bias"], torch.tensor([1.0, 0, 0, 0]))
    assert not got["synthesis.input.affine.weight"].any() and not got["mapping.w_avg"].any()


def test_init_is_deterministic_and_leaves_the_global_rng_alone():
    cfg = _tiny(c_dim=3)
    state = torch.get_rng_state()
    a, b = init_generator3(cfg, seed=7).state_dict(), init_generator3(cfg, seed=7).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = init_generator3(cfg, seed=torch.Generator().manual_seed(7)).state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)
    d = init_generator3(cfg, seed=8).state_dict()
    assert not torch.equal(a["mapping.fc0.weight"], d["mapping.fc0.weight"])
    assert not torch.equal(a["synthesis.input.freqs"], d["synthesis.input.freqs"])


def test_init_distributions():
    G = init_generator3(design_config3(img_resolution=16, z_dim=64, w_dim=64, channel_base=4096, channel_max=256))
    inp = G.synthesis.input
    radius = inp.freqs.norm(dim=1) / inp.spec.bandwidth
    assert radius.max() <= 1 and 0.6 < (radius**2).mean() * 2 < 1.4  # uniform disc: E[r^2] = 1/2
    assert inp.phases.min() >= -0.5 and inp.phases.max() < 0.5
    layer = getattr(G.synthesis, G.synthesis.layer_names[0])
    assert torch.equal(layer.affine.bias, torch.ones_like(layer.affine.bias)) and not layer.bias.any()
    assert 0.9 < layer.weight.std() < 1.1 and layer.magnitude_ema.item() == 1
    assert 90 < G.mapping.fc0.weight.std() < 110  # N(0, 1) / lr_multiplier 0.01


@pytest.mark.parametrize("architecture", ["stylegan3-t", "stylegan3-r"])
def test_initialised_generator_runs_and_trains(architecture):
    G = init_generator3(_tiny(architecture), seed=1)
    assert isinstance(G, Generator3) and G.training and all(p.requires_grad for p in G.parameters())
    z = torch.randn([2, 8], generator=torch.Generator().manual_seed(0))
    img = G(z)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all() and img.abs().max() > 0
    img.square().mean().backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():
        G.synthesis(G.mapping(z), update_emas=True)  # the magnitude EMA moves off 1
    assert getattr(G.synthesis, G.synthesis.layer_names[0]).magnitude_ema.item() != 1


def test_initialised_generator_snapshot_round_trips(tmp_path):
    G = init_generator3(_tiny("stylegan3-r"), seed=3)
    stylegen.save_network(tmp_path / "g.pkl", G_ema=G)
    H = load_network(tmp_path / "g.pkl")
    assert H.config == G.config
    assert all(torch.equal(a, b) for a, b in zip(H.state_dict().values(), G.state_dict().values()))
    assert layer_filters(G.config.layers[0]).keys() == {"up_filter", "down_filter"}
