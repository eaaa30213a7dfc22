"""Projection into StyleGAN3 networks (NVIDIA's fixtures): a generated image is recovered in w and
W+, the network and its input transform are left as they are, and `stylegen project` writes a
ws.npz that re-renders proj.png.

Oracles: the target is G.synthesis(ws) of a known seed; the start is the image at the mapping's
tracked w_avg; distances and PSNR are recomputed here from the uint8 images. LPIPS runs with a
randomly initialised VGG16 (the real weights cannot be downloaded here; every weight URL points
at a closed loopback port, tests/weights_helpers.py).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
import torch
from cli_helpers import png, run, usage_error
from PIL import Image
from torchvision.models import vgg
from weights_helpers import go_offline

import stylegen
from stylegen.editing import projection
from stylegen.formats import ws_file
from stylegen.formats.images import to_numpy_images
from stylegen.metrics import perceptual
from stylegen.networks.sg3_generator import Generator3

# Enough for a 2x drop in pixel MSE with margin: 3x to 15x seen over --seed 303..305, both modes.
STEPS = {"sg3t": 12, "sg3r": 8}  # sg3r's radial filters make its steps ~3x dearer on the CPU


@pytest.fixture(autouse=True)
def _offline_native_ops(monkeypatch, tmp_path):
    # The cpu plugin where it builds: the reference filtered_lrelu is ~10x slower on sg3t's 64 px.
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "auto"))
    go_offline(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("STYLEGEN_VGG16", raising=False)


@pytest.fixture(scope="module")
def sg3(compat_dir):
    """Paths and networks of the two fixtures, loaded once."""
    paths = {name: compat_dir / f"{name}_small.pkl" for name in ("sg3t", "sg3r")}
    return {name: (path, stylegen.load_network(path).eval()) for name, path in paths.items()}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random torchvision VGG16 conv trunk as `features.*` (as tests/test_feature_nets.py)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg.make_layers(vgg.cfgs["D"]).state_dict().items()}
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


class PixelDistance(perceptual.PerceptualDistance):
    """A cheap stand-in for LPIPS: mean squared pixel difference."""

    name = "pixel mse"

    def embed(self, img):
        return [img]

    def distance(self, e0, e1):
        return (e0[0] - e1[0]).square().mean(dim=[1, 2, 3])


def render(G, ws: torch.Tensor) -> np.ndarray:
    """uint8 [R, R, C] of ws [1, num_ws, w_dim]."""
    with torch.no_grad():
        return to_numpy_images(G.synthesis(ws, noise_mode="const"))[0]


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def seed_target(G, seed: int) -> torch.Tensor:
    """uint8 [C, R, R]: G.synthesis of the seed's ws (no truncation)."""
    with torch.no_grad():
        ws = G.mapping(stylegen.seed_to_z(seed, G.z_dim))
    return torch.from_numpy(render(G, ws)).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------------------
# Library


@pytest.mark.parametrize("w_plus", [False, True], ids=["w", "w_plus"])
@pytest.mark.parametrize("name", ["sg3t", "sg3r"])
def test_projection_recovers_a_generated_image(sg3, name, w_plus):
    _, G = sg3[name]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    target = seed_target(G, 5)
    target_np = target.permute(1, 2, 0).numpy()
    start = render(G, G.mapping.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1))
    cfg = projection.ProjectConfig(num_steps=STEPS[name], w_plus=w_plus, w_avg_samples=1000)
    proj = projection.project(G, target, PixelDistance(), cfg)

    assert proj.ws.shape == (1, G.num_ws, G.w_dim) and proj.ws.dtype == torch.float32
    if not w_plus:
        assert torch.equal(proj.ws, proj.ws[:, :1].expand_as(proj.ws))
    else:
        assert not torch.equal(proj.ws[:, 0], proj.ws[:, -1])
    assert proj.noise == {}  # StyleGAN3 has no noise maps
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # G untouched
    # The reported image is what ws renders to, with or without "the network's own noise".
    np.testing.assert_array_equal(render(G, proj.ws), proj.image)
    np.testing.assert_array_equal(proj.image, proj.image_stored_noise)
    # Pixel MSE at least halves against the image at the tracked w_avg (and against step 0).
    start_mse, end_mse = mse(start, target_np), mse(proj.image, target_np)
    assert end_mse < 0.5 * start_mse, (start_mse, end_mse)
    assert proj.distance < 0.5 * proj.distance_start, (proj.distance_start, proj.distance)
    assert proj.psnr == pytest.approx(10 * math.log10(255**2 / end_mse))


def test_projection_keeps_the_input_transform(sg3):
    _, G = sg3["sg3r"]
    G = G.freeze()  # a private copy to rotate
    angle = math.radians(30)
    rotation = [[math.cos(angle), math.sin(angle), 0], [-math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    G.synthesis.input.transform.copy_(torch.tensor(rotation))
    target = seed_target(G, 5)
    proj = projection.project(G, target, PixelDistance(), projection.ProjectConfig(num_steps=2, w_avg_samples=200))
    assert torch.equal(G.synthesis.input.transform, torch.tensor(rotation))
    np.testing.assert_array_equal(render(G, proj.ws), proj.image)  # rendered through the rotation
    G.synthesis.input.transform.copy_(torch.eye(3))
    assert mse(render(G, proj.ws), proj.image) > 1


def test_projection_refuses_conditional_stylegen3(sg3):
    G = Generator3(dataclasses.replace(sg3["sg3r"][1].config, c_dim=3))
    with pytest.raises(ValueError, match=r"conditional networks \(c_dim=3\)"):
        projection.project(G, torch.zeros([3, 32, 32], dtype=torch.uint8), PixelDistance())


# ---------------------------------------------------------------------------------------------
# Command line


def test_project_cli_writes_a_ws_file_that_renders_proj_png(sg3, vgg_file, tmp_path):
    path, G = sg3["sg3r"]
    Image.fromarray(seed_target(G, 3).permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")
    out = tmp_path / "proj"
    r = run(
        "project", "--network", path, "--target", tmp_path / "photo.png", "--steps", 3, "--w-plus",
        "--vgg", vgg_file, "--outdir", out, "--save-video", "--device", "cpu",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Distance: lpips-vgg16" in r.output and "PSNR" in r.output
    assert "own noise" not in r.output  # nothing to re-render differently
    for name in ("ws.npz", "proj.png", "target.png", "target_vs_proj.png", "proj.gif"):
        assert (out / name).is_file(), name
    with np.load(out / "ws.npz") as data:
        assert not [k for k in data.files if k.startswith("noise.")]
        assert data["seeds"].tolist() == [-1] and str(data["network_name"]) == path.name
    ws, _ = ws_file.read_ws_file(out / "ws.npz")
    assert ws.shape == (1, G.num_ws, G.w_dim) and ws.dtype == np.float32
    # As docs/cli.md says: G.synthesis(ws.npz's ws) re-renders the projected image.
    fresh = stylegen.load_network(path)
    np.testing.assert_array_equal(render(fresh, torch.from_numpy(ws)), png(out / "proj.png"))
    assert Image.open(out / "target_vs_proj.png").size == (64, 32)
    assert Image.open(out / "proj.gif").n_frames > 2


def test_project_cli_errors_stay_one_line(sg3, tmp_path):
    path, G = sg3["sg3r"]
    Image.fromarray(np.zeros([8, 8, 3], np.uint8)).save(tmp_path / "photo.png")
    args = ("--target", tmp_path / "photo.png", "--outdir", tmp_path / "o", "--device", "cpu")
    line = usage_error("project", "--network", path, *args)  # LPIPS without its weights, offline
    assert "vgg16-397923af.pth" in line and "--distance offline" in line
    cond = tmp_path / "cond.pkl"
    Gc = Generator3(dataclasses.replace(G.config, c_dim=3))
    stylegen.save_network(cond, G=Gc, G_ema=Gc)
    usage_error("project", "--network", cond, *args, "--distance", "offline", match="conditional networks (c_dim=3)")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = ("--target", tmp_path / "bad.png", "--distance", "offline", "--device", "cpu")
    usage_error("project", "--network", path, *bad, match="bad.png: not a readable image")
    assert not (tmp_path / "o").exists()
