"""StyleGAN3 networks of uncommon settings: NVIDIA's own pickles of them, their pixels.

The references (tests/data/nvidia_sg3_configs.npz) were made by NVIDIA's stylegan3 code, run by
scripts/make_sg3_configs_fixture.py: tiny generators with the Generator arguments the shared
fixtures leave at their defaults (conditional, 1 and 4 image channels, 1024 px, other layer
counts, one critical layer, first cutoff and stop band, margin, output scale, filter taps,
leaky-ReLU up-sampling, radial filters in -T, an active conv_clamp, num_fp16_res), random
non-zero weights, pickled by their persistence module with its module sources. Each pickle is
read by our loader and must give their ws and images, with the input transform set through our
API as their gen_images.py sets it; design_config3 given the same arguments must lay out the
layers and filters the pickle stores; a stored D must give their logits.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegen.formats.network_file import read_network_file
from stylegen.networks.sg3_design import design_config3, layer_filters
from stylegen.networks.sg3_generator import Generator3

import ops_helpers

cpu_plugin, cpu_gemm = ops_helpers.cpu_plugin, ops_helpers.cpu_gemm

FIXTURE = Path(__file__).parent / "data" / "nvidia_sg3_configs.npz"
NAMES = ["t_layout", "t_cond_gray_clamp", "t_radial", "r_rgba_cond", "t_1024"]
WITH_D = ["t_cond_gray_clamp", "r_rgba_cond"]
ATOL = 1e-4  # FORMAT.md: images to 1e-4 max abs
WS_ATOL = 1e-5


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def files(fixture, tmp_path_factory) -> dict:
    """name -> our NetworkFile of NVIDIA's pickle (read once per module)."""
    tmp = tmp_path_factory.mktemp("sg3_configs")
    out = {}
    for name in NAMES:
        path = tmp / f"{name}.pkl"
        path.write_bytes(fixture[f"{name}/pickle"].tobytes())
        out[name] = read_network_file(path)
    return out


def kwargs_of(fixture: dict, name: str) -> dict:
    return json.loads(str(fixture[f"{name}/kwargs"]))


def settings(fixture: dict):
    """(index, psi, cutoff or None, translate, rotate) of each stored setting."""
    for s, (psi, cutoff) in enumerate(zip(fixture["psis"], fixture["cutoffs"])):
        translate = tuple(float(v) for v in fixture["translates"][s])
        yield s, float(psi), None if cutoff < 0 else int(cutoff), translate, float(fixture["rotates"][s])


def assert_nvidia_pixels(G: Generator3, fixture: dict, name: str, frozen: bool, one_by_one: bool = False) -> None:
    z, c = torch.from_numpy(fixture[f"{name}/z"]), torch.from_numpy(fixture[f"{name}/c"])
    stride = int(fixture[f"{name}/stride"])
    for s, psi, cutoff, translate, rotate in settings(fixture):
        G = copy.deepcopy(G)
        G.synthesis.set_input_transform(translate=translate, rotate=rotate)
        net = G.freeze() if frozen else G
        with torch.no_grad():
            ws = net.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
            if one_by_one:
                img = torch.cat([net.synthesis(ws[i : i + 1]) for i in range(len(ws))])
            else:
                img = net.synthesis(ws)
        ws_diff = (ws - torch.from_numpy(fixture[f"{name}/ws/{s}"])).abs().max().item()
        assert ws_diff <= WS_ATOL, f"{name} ws, setting {s}: {ws_diff:.3g}"
        want = torch.from_numpy(fixture[f"{name}/img/{s}"])
        diff = (img[:, :, ::stride, ::stride] - want).abs().max().item()
        assert diff <= ATOL, (
            f"{name} images, setting {s} (psi {psi}, translate {translate}, rotate {rotate}): {diff:.3g}"
        )


def test_fixture_covers_the_settings(fixture):
    """The networks take what the shared fixtures leave at NVIDIA's defaults."""
    kws = {n: kwargs_of(fixture, n) for n in NAMES}
    assert {kw["img_channels"] for kw in kws.values()} == {1, 3, 4}
    assert sum(kw["c_dim"] > 0 for kw in kws.values()) == 2
    assert max(kw["img_resolution"] for kw in kws.values()) == 1024
    assert kws["t_layout"]["num_critical"] == 1 and kws["t_layout"]["num_layers"] == 10
    assert kws["t_layout"]["filter_size"] == 4 and kws["t_layout"]["lrelu_upsampling"] == 4
    assert kws["t_radial"]["use_radial_filters"] and "conv_kernel" not in kws["t_radial"]
    assert kws["r_rgba_cond"]["conv_kernel"] == 1
    assert kws["t_cond_gray_clamp"]["conv_clamp"] == 1.0
    # the input transform: one setting with translation and rotation, as gen_images.py's options
    assert any(fixture["rotates"]) and np.abs(fixture["translates"]).sum() > 0
    # conv_clamp 1.0 is reached: their images with the clamp lifted differ by far more than ATOL
    lifted = fixture["t_cond_gray_clamp/img_unclamped/0"]
    assert np.abs(fixture["t_cond_gray_clamp/img/0"] - lifted).max() > 100 * ATOL


@pytest.mark.parametrize("form", ["eval", "frozen"])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "t_1024"])
def test_nvidia_pixels(fixture, files, ops_impl, name, form):
    G = files[name].G_ema
    assert isinstance(G, Generator3) and "without executing code" in G.source_format
    assert_nvidia_pixels(G, fixture, name, frozen=form == "frozen")


@pytest.mark.parametrize("ops_impl", ["cpu"], indirect=True)
@pytest.mark.parametrize("form", ["eval", "frozen"])
def test_nvidia_pixels_1024(fixture, files, ops_impl, form):
    """1024 px through the CPU plugin only: the reference op takes about a minute per form there
    (it is checked against NVIDIA's on the smaller networks above)."""
    assert_nvidia_pixels(files["t_1024"].G_ema, fixture, "t_1024", frozen=form == "frozen")


@pytest.mark.parametrize("name", ["t_1024", "r_rgba_cond", "t_layout"])
def test_frozen_one_image_at_a_time_with_each_gemm(fixture, files, cpu_gemm, monkeypatch, name):
    """The frozen form's one-image path (both scales in the weights) and its GEMMs."""
    monkeypatch.setenv("STYLEGEN_OPS", "cpu")
    assert_nvidia_pixels(files[name].G_ema, fixture, name, frozen=True, one_by_one=True)


@pytest.mark.parametrize("name", NAMES)
def test_design_lays_out_the_pickles_layers_and_filters(fixture, files, name):
    kw = kwargs_of(fixture, name)
    mapping = kw.pop("mapping_kwargs", {})
    kw.pop("num_fp16_res", None)  # float16 layers: not a layout setting (we run float32)
    cfg = design_config3(mapping_layers=mapping.get("num_layers", 2), **kw)  # 2: their default
    loaded = files[name].G_ema
    assert cfg.input == loaded.config.input
    for got, want in zip(cfg.layers, loaded.config.layers, strict=True):
        differ = [f.name for f in dataclasses.fields(got) if getattr(got, f.name) != getattr(want, f.name)]
        assert not differ, f"{want.name}: {differ}"
        layer = getattr(loaded.synthesis, want.name)
        stored = {k: getattr(layer, k, None) for k in ("up_filter", "down_filter")}
        stored = {k: v for k, v in stored.items() if v is not None}
        designed = layer_filters(got)
        assert designed.keys() == stored.keys(), want.name
        for k, v in designed.items():
            assert torch.equal(v, stored[k]), f"{want.name}.{k}: max diff {(v - stored[k]).abs().max():.3g}"


@pytest.mark.parametrize("name", WITH_D)
def test_discriminator_logits(fixture, files, ops_impl, name):
    D = files[name].D
    img, c = torch.from_numpy(fixture[f"{name}/d_img"]), torch.from_numpy(fixture[f"{name}/c"])
    want = torch.from_numpy(fixture[f"{name}/d_logits"])
    with torch.no_grad():
        got = D(img, c)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
