"""StyleGAN3 networks of uncommon settings: NVIDIA's own pickles of them, their pixels.

The references (tests/data/nvidia_sg3_configs.npz) were made by NVIDIA's stylegan3 code, run by
scripts/make_sg3_configs_fixture.py: tiny generators with the Generator arguments the shared
fixtures leave at their defaults (conditional, 1 and 4 image channels, 1024 px, other layer
counts, one critical layer, first cutoff and stop band, margin, output scale, filter taps,
leaky-ReLU up-sampling, radial filters in -T, an active conv_clamp), random non-zero weights
(the input's affine too), pickled by their persistence module with its module sources; two hold
a training snapshot's G and D as well. Each pickle is read by our loader and must give their ws
and images, with the input transform set through our API as their gen_images.py sets it;
design_config3 given the same arguments must lay out the layers and filters the pickle stores;
a stored G and D must give their images and logits.
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


def images(G: Generator3, z, c, psi=1.0, cutoff=None, translate=(0.0, 0.0), rotate=0.0, frozen=False, one_by_one=False):
    """(ws, images) of a copy of G with the input transform set through our API."""
    g = copy.deepcopy(G)
    g.synthesis.set_input_transform(translate=translate, rotate=rotate)
    net = g.freeze() if frozen else g
    with torch.no_grad():
        ws = net.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
        if one_by_one:
            return ws, torch.cat([net.synthesis(ws[i : i + 1]) for i in range(len(ws))])
        return ws, net.synthesis(ws)


def max_diff(got: torch.Tensor, want: np.ndarray, stride: int = 1) -> float:
    return (got[..., ::stride, ::stride] - torch.from_numpy(want)).abs().max().item()


def assert_nvidia_pixels(G: Generator3, fixture: dict, name: str, frozen: bool, one_by_one: bool = False) -> None:
    z, c = torch.from_numpy(fixture[f"{name}/z"]), torch.from_numpy(fixture[f"{name}/c"])
    stride = int(fixture[f"{name}/stride"])
    for s, psi, cutoff, translate, rotate in settings(fixture):
        ws, img = images(G, z, c, psi, cutoff, translate, rotate, frozen=frozen, one_by_one=one_by_one)
        ws_diff = max_diff(ws, fixture[f"{name}/ws/{s}"])
        assert ws_diff <= WS_ATOL, f"{name} ws, setting {s}: {ws_diff:.3g}"
        diff = max_diff(img, fixture[f"{name}/img/{s}"], stride)
        assert diff <= ATOL, (
            f"{name} images, setting {s} (psi {psi}, translate {translate}, rotate {rotate}): {diff:.3g}"
        )


def test_loader_reads_the_settings(files):
    """What the networks take besides train.py's defaults, as our loader reads it from the records."""
    cfg = {n: files[n].G_ema.config for n in NAMES}
    layout = cfg["t_layout"]
    assert len(layout.layers) == 11 and layout.mapping_layers == 8 and layout.output_scale == 0.5
    assert sum(s.is_critically_sampled and not s.is_torgb for s in layout.layers) == 1
    assert layout.conv_clamp is None and layout.input.bandwidth == 3
    assert {s.up_taps // s.up_factor for s in layout.layers if s.up_taps > 1} == {4}  # filter_size 4
    assert cfg["t_radial"].layers[0].conv_kernel == 3 and any(s.down_radial for s in cfg["t_radial"].layers)
    r = cfg["r_rgba_cond"]
    assert (r.architecture, r.img_channels, r.c_dim) == ("stylegan3-r", 4, 3)
    gray = cfg["t_cond_gray_clamp"]
    assert (gray.conv_clamp, gray.img_channels, gray.c_dim) == (1.0, 1, 5)
    assert cfg["t_1024"].img_resolution == 1024 and cfg["t_1024"].num_ws == 16


def test_the_clamp_is_reached(fixture, files):
    """conv_clamp 1 shapes the images: lifted, ours gives NVIDIA's unclamped images, far from the clamped."""
    name = "t_cond_gray_clamp"
    G = files[name].G_ema
    config = dataclasses.replace(G.config, layers=[dataclasses.replace(s, conv_clamp=None) for s in G.config.layers])
    lifted = Generator3(config).eval()
    lifted.load_state_dict(G.state_dict())
    z, c = torch.from_numpy(fixture[f"{name}/z"]), torch.from_numpy(fixture[f"{name}/c"])
    _, img = images(lifted, z, c)
    assert max_diff(img, fixture[f"{name}/img_unclamped/0"]) <= ATOL
    assert max_diff(img, fixture[f"{name}/img/0"]) > 100 * ATOL


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


@pytest.mark.parametrize("name", ["t_layout", "t_radial", "r_rgba_cond"])
def test_frozen_one_image_at_a_time(fixture, files, ops_impl, name):
    """The frozen form's one-image paths: with the reference ops both scales go into the weights;
    with the CPU plugin each image is its own product."""
    assert_nvidia_pixels(files[name].G_ema, fixture, name, frozen=True, one_by_one=True)


@pytest.mark.parametrize("name", ["t_1024", "r_rgba_cond"])
def test_frozen_with_each_gemm(fixture, files, cpu_gemm, monkeypatch, name):
    """The CPU plugin's products (Winograd 3x3, the 1x1 layers) on each GEMM, one image and a batch."""
    monkeypatch.setenv("STYLEGEN_OPS", "cpu")
    assert_nvidia_pixels(files[name].G_ema, fixture, name, frozen=True)
    assert_nvidia_pixels(files[name].G_ema, fixture, name, frozen=True, one_by_one=True)


@pytest.mark.parametrize("name", WITH_D)
def test_training_copy_G(fixture, files, ops_impl, name):
    """A snapshot's G (weights of its own, not G_ema's) gives NVIDIA's images of G."""
    z, c = torch.from_numpy(fixture[f"{name}/z"]), torch.from_numpy(fixture[f"{name}/c"])
    _, img = images(files[name].G, z, c)
    assert max_diff(img, fixture[f"{name}/img_G/0"]) <= ATOL
    assert max_diff(img, fixture[f"{name}/img/0"]) > 100 * ATOL  # G_ema's differ


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
            # one float32 ulp: the radial filters' Bessel J1 takes numpy's float64 sin/cos, whose
            # last bit may depend on the CPU's vector instructions
            torch.testing.assert_close(v, stored[k], rtol=2**-23, atol=0, msg=f"{want.name}.{k}")
    assert cfg == loaded.config  # output scale, mapping, sizes too


@pytest.mark.parametrize("name", WITH_D)
def test_discriminator_logits(fixture, files, ops_impl, name):
    D = files[name].D
    img, c = torch.from_numpy(fixture[f"{name}/d_img"]), torch.from_numpy(fixture[f"{name}/c"])
    want = torch.from_numpy(fixture[f"{name}/d_logits"])
    with torch.no_grad():
        got = D(img, c)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
