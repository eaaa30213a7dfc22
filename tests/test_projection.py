"""Projection: recovering a generated image, the schedules, target loading, the output files, and
the projected ws as a `stylegen mix` destination."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegen
from stylegen.cli.main import main
from stylegen.editing import mixing, projection
from stylegen.formats import ws_file
from stylegen.formats.images import to_numpy_images
from stylegen.metrics import perceptual


@pytest.fixture(autouse=True)
def _ref_ops(monkeypatch):
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


class PixelDistance(perceptual.PerceptualDistance):
    """A cheap stand-in for LPIPS: mean squared pixel difference."""

    name = "pixel mse"

    def embed(self, img):
        return [img]

    def distance(self, e0, e1):
        return (e0[0] - e1[0]).square().mean(dim=[1, 2, 3])


def seed_image(G, seed: int) -> torch.Tensor:
    """uint8 [C, R, R] made by G from a seed (the network's own noise)."""
    with torch.no_grad():
        img = G(stylegen.seed_to_z(seed, G.z_dim), noise_mode="const")
    return torch.from_numpy(to_numpy_images(img)[0]).permute(2, 0, 1).contiguous()


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="stylegen")


# ---------------------------------------------------------------------------------------------
# Library


@pytest.mark.parametrize("w_plus", [False, True])
def test_projection_recovers_a_generated_image(make_generator, w_plus):
    G = make_generator(0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    target = seed_image(G, 5)
    cfg = projection.ProjectConfig(num_steps=150, w_plus=w_plus, w_avg_samples=1000)
    proj = projection.project(G, target, PixelDistance(), cfg)
    assert proj.psnr > proj.psnr_start + 3, (proj.psnr_start, proj.psnr)
    assert proj.distance < 0.5 * proj.distance_start, (proj.distance_start, proj.distance)
    assert proj.ws.shape == (1, G.num_ws, G.w_dim)
    if not w_plus:
        assert torch.equal(proj.ws, proj.ws[:, :1].expand_as(proj.ws))
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # G untouched
    for name, noise in proj.noise.items():  # renormalised every step
        assert abs(float(noise.mean())) < 1e-5 and float(noise.square().mean()) == pytest.approx(1, abs=1e-4), name
    # The reported images are what ws (+ the optimised noise) render to.
    G_noise = make_generator(0)
    with torch.no_grad():
        for name, buf in G_noise.synthesis.named_buffers():
            if name in proj.noise:
                buf.copy_(proj.noise[name])
        image = to_numpy_images(G_noise.synthesis(proj.ws, noise_mode="const", fused_modconv=True))[0]
        stored = to_numpy_images(G.synthesis(proj.ws, noise_mode="const"))[0]
    np.testing.assert_array_equal(image, proj.image)
    np.testing.assert_array_equal(stored, proj.image_stored_noise)


def test_projection_with_the_offline_distance(make_generator):
    G = make_generator(0)
    target = seed_image(G, 5)
    cfg = projection.ProjectConfig(num_steps=40, w_avg_samples=500)
    proj = projection.project(G, target, perceptual.load_distance("offline"), cfg)
    assert proj.psnr > proj.psnr_start + 1.5, (proj.psnr_start, proj.psnr)


def test_schedules_follow_the_paper():
    cfg = projection.ProjectConfig(num_steps=1000)
    lrs = [projection.learning_rate(s, cfg) for s in range(1000)]
    assert lrs[0] == 0 and lrs[50] == pytest.approx(0.1) and max(lrs) == pytest.approx(0.1)
    assert lrs[25] == pytest.approx(0.05) and lrs[500] == pytest.approx(0.1)
    assert lrs[875] == pytest.approx(0.05, abs=1e-3) and lrs[999] < 1e-3  # cosine ramp-down


def test_noise_regularization_prefers_white_noise():
    torch.manual_seed(0)
    white = torch.randn(32, 32)
    smooth = torch.nn.functional.interpolate(torch.randn(1, 1, 8, 8), size=32, mode="bilinear")[0, 0]
    smooth = (smooth - smooth.mean()) / smooth.std()
    assert projection.noise_regularization([white]) < 0.01 * projection.noise_regularization([smooth])
    # Hand case: a constant map has autocorrelation 1 at every shift and scale (32, 16, 8: 3 x 2 terms).
    assert float(projection.noise_regularization([torch.ones(32, 32)])) == pytest.approx(6)


def test_w_stats():
    class Mapping(torch.nn.Module):  # w = z, so w_avg -> 0 and w_std -> sqrt(w_dim)
        z_dim = w_dim = 4

        def forward(self, z, c):
            return z[:, None, :].expand(-1, 3, -1)

    class G(torch.nn.Module):
        z_dim = 4

        def __init__(self):
            super().__init__()
            self.mapping = Mapping()
            self.p = torch.nn.Parameter(torch.zeros([]))

    w_avg, w_std = projection.w_stats(G(), 10000)
    assert w_avg.shape == (1, 1, 4) and float(w_avg.abs().max()) < 0.05
    assert w_std == pytest.approx(2, rel=0.02)


def test_load_target_crops_resizes_and_converts(tmp_path):
    wide = np.zeros([40, 80, 3], np.uint8)
    wide[:, 20:60] = [255, 0, 0]  # the centred square is pure red; the sides are black
    Image.fromarray(wide).save(tmp_path / "wide.png")
    t = projection.load_target(tmp_path / "wide.png", 16, 3)
    assert t.shape == (3, 16, 16) and t.dtype == torch.uint8
    assert int(t[0].min()) >= 250 and int(t[1:].max()) <= 5
    gray = projection.load_target(tmp_path / "wide.png", 8, 1)
    assert gray.shape == (1, 8, 8) and abs(int(gray[0, 4, 4]) - 76) <= 2  # luminance of red
    Image.fromarray(np.full([10, 10], 128, np.uint8)).save(tmp_path / "gray.png")
    rgb = projection.load_target(tmp_path / "gray.png", 16, 3)
    assert rgb.shape == (3, 16, 16) and torch.all(rgb == 128)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png: not a readable image"):
        projection.load_target(tmp_path / "bad.png", 16, 3)


def test_projection_refuses_conditional_networks(make_generator):
    G = make_generator(0, c_dim=3)
    with pytest.raises(ValueError, match="conditional"):
        projection.project(G, torch.zeros([3, 16, 16], dtype=torch.uint8), PixelDistance())


# ---------------------------------------------------------------------------------------------
# Command line: files, then the projected ws in `mix`


@pytest.fixture
def nets(tmp_path, make_generator):
    paths = {}
    for name, kw in (("rgb", {}), ("gray", {"img_channels": 1})):
        G = make_generator(0, **kw)
        paths[name] = tmp_path / f"{name}.pkl"
        stylegen.save_network(paths[name], G=G, G_ema=G)
    return paths


def test_project_cli_writes_outputs_and_mix_reads_them(tmp_path, nets):
    G = stylegen.load_network(nets["rgb"])
    Image.fromarray(seed_image(G, 3).permute(1, 2, 0).numpy()).resize((40, 32)).save(tmp_path / "photo.png")
    out = tmp_path / "proj"
    r = run(
        "project", "--network", nets["rgb"], "--target", tmp_path / "photo.png", "--steps", 12,
        "--distance", "offline", "--outdir", out, "--save-video", "--device", "cpu",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "PSNR" in r.output and "effnet-lite0" in r.output
    for name in ("ws.npz", "proj.png", "target.png", "target_vs_proj.png", "proj.gif"):
        assert (out / name).is_file(), name
    with np.load(out / "ws.npz") as data:  # the `sample --save-ws` format
        assert data["ws"].shape == (1, G.num_ws, G.w_dim) and data["ws"].dtype == np.float32
        assert data["seeds"].tolist() == [-1] and data["seeds"].dtype == np.int64
        assert float(data["truncation_psi"]) == 1 and int(data["truncation_cutoff"]) == -1
        assert int(data["class_idx"]) == -1
        assert str(data["network_name"]) == Path(nets["rgb"]).name
        ws = torch.from_numpy(data["ws"])
    assert Image.open(out / "proj.png").size == (16, 16)
    assert Image.open(out / "target_vs_proj.png").size == (32, 16)
    gif = Image.open(out / "proj.gif")
    assert gif.size == (32, 16) and gif.n_frames > 2

    # The projected image as the destination of style mixing (seeds as sources).
    r = run(
        "mix", "--network", nets["rgb"], "--fine", out / "ws.npz", "--coarse-seeds", "0,1", "--out", tmp_path / "m.png"
    )
    assert r.exit_code == 0, r.output
    grid = np.asarray(Image.open(tmp_path / "m.png"))
    assert grid.shape == (32, 48, 3)  # (1 + 1 destination) x (1 + 2 sources)
    with torch.no_grad():
        src_ws = mixing.ws_from_seeds(G, [0, 1])
        sel = mixing.resolve_split("coarse", G.img_resolution, G.num_ws)
        cells = to_numpy_images(G.synthesis(mixing.mix_ws(ws, src_ws, sel.ws_indices)))
        left = to_numpy_images(G.synthesis(ws))[0]
    np.testing.assert_array_equal(grid[16:, :16], left)
    np.testing.assert_array_equal(grid[16:, 16:32], cells[0])
    np.testing.assert_array_equal(grid[16:, 32:], cells[1])

    # ws files on both sides, a sample --save-ws file as the source, --coarse-seeds refused with a ws file.
    r = run("sample", "--network", nets["rgb"], "--seeds", "7,8", "--save-ws", "--outdir", tmp_path / "s")
    assert r.exit_code == 0, r.output
    r = run(
        "mix", "--network", nets["rgb"], "--coarse", tmp_path / "s" / "ws.npz", "--fine", out / "ws.npz",
        "--outdir", tmp_path / "cells",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert {p.name for p in (tmp_path / "cells").iterdir()} == {"mix.png", "mix-c0007-fws0.png", "mix-c0008-fws0.png"}
    r = run("mix", "--coarse", nets["rgb"], "--fine", out / "ws.npz", "--fine-seeds", "3")
    assert r.exit_code == 2 and "ws file" in r.output
    r = run("mix", "--network", nets["gray"], "--fine", out / "ws.npz", "--out", tmp_path / "g.png")  # same shapes
    assert r.exit_code == 0, r.output
    assert f"was made with {Path(nets['rgb']).name}" in r.output  # ... but another network: warned


def test_mix_refuses_ws_of_another_shape(tmp_path, nets, make_generator):
    G = make_generator(1, img_resolution=8)
    ws = tmp_path / "ws8.npz"
    ws_file.save_ws_file(ws, torch.zeros([2, G.num_ws, G.w_dim]))
    r = run("mix", "--network", nets["rgb"], "--fine", ws)
    assert r.exit_code == 2 and "ws8.npz: ws of shape (2, 4, 8) do not fit" in r.output


def test_project_grayscale_network_and_target(tmp_path, nets):
    Image.fromarray(np.random.RandomState(0).randint(0, 256, [24, 24, 3], dtype=np.uint8)).save(tmp_path / "c.png")
    out = tmp_path / "g"
    r = run(
        "project", "--network", nets["gray"], "--target", tmp_path / "c.png", "--steps", 3,
        "--distance", "offline", "--w-plus", "--outdir", out, "--device", "cpu",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert Image.open(out / "proj.png").mode == "L" and Image.open(out / "target_vs_proj.png").size == (32, 16)
    assert math.isfinite(float(r.output.split("PSNR ")[1].split(" dB")[0]))
