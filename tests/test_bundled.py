"""The bundled networks: installed with the package, resolved by name, used by default."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cli_helpers
import numpy as np
import pytest
import torch
from cli_helpers import library_images, ok, png, usage_error
from PIL import Image

import stylegen
from stylegen.formats import bundled

# Fixtures, bound by name so pytest finds them here.
_ref_ops = cli_helpers._ref_ops
nets = cli_helpers.nets

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
PROJECTION_STEPS = 200  # > 25 dB on people at 64x64 (measured 31.3 dB for seed 5); ~19 s here


@pytest.fixture(scope="module")
def people():
    return stylegen.load_network(stylegen.default_network())


def test_every_bundled_network_is_installed_and_loads():
    # Missing model files would make the main command fail on a fresh install: no skip here.
    for name in bundled.names():
        path = bundled.bundled_path(name)
        assert path.is_file() and path.name.endswith(".pkl")
        G = stylegen.load_network(path)
        assert (G.img_resolution, G.img_channels, G.c_dim) == (64, 3, 0)
        extra = stylegen.load_snapshot(path)["extra"]
        assert extra["model"] == name
        assert "Open Font License" in extra["licence"]
        assert extra["dataset"]["font_license"] == "OFL-1.1"
        assert extra["kimg"] > 0 and "stylegen train" in extra["command"]
        # Shipped lean: only G_ema, no discriminator or optimizer state.
        assert {"G", "D", "training"}.isdisjoint(stylegen.load_snapshot(path))
    assert stylegen.default_network() == bundled.bundled_path("people")
    total = sum(bundled.bundled_path(n).stat().st_size for n in bundled.names())
    assert total <= 25e6


def test_faces_is_fine_tuned_from_people_so_layers_can_be_swapped():
    from stylegen.editing import mixing

    G_people = stylegen.load_network(bundled.bundled_path("people"))
    G_faces = stylegen.load_network(bundled.bundled_path("faces"))
    mixing.check_same_architecture(G_people, G_faces)
    assert stylegen.load_snapshot(bundled.bundled_path("faces"))["extra"]["parent"] == "people"
    # Fine-tuned, not copied: the weights differ, yet stay close to the parent's.
    p = dict(G_people.named_parameters())
    diffs = [float((q - p[n]).norm() / (p[n].norm() + 1e-8)) for n, q in G_faces.named_parameters()]
    assert 0 < np.median(diffs) < 1


def test_resolve_prefers_an_existing_file_then_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bundled.resolve("people") == bundled.bundled_path("people")
    Path("people").write_bytes(b"x")
    assert bundled.resolve("people") == Path("people")
    with pytest.raises(bundled.BundledNetworkError, match=r"nosuch\.pkl: no such file, and not a bundled"):
        bundled.resolve("nosuch.pkl")


def test_a_missing_model_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "MODELS_DIR", tmp_path)
    with pytest.raises(bundled.BundledNetworkError, match="missing from this installation"):
        stylegen.default_network()


def test_sample_without_network_uses_the_bundled_people(tmp_path, people):
    ok("sample", "--seeds", "0-11", "--outdir", tmp_path, "--grid")
    images = np.stack([png(tmp_path / f"seed{s:04d}.png") for s in range(12)])
    assert images.shape == (12, 64, 64, 3)
    np.testing.assert_allclose(images, library_images(people, range(12), noise_mode="const"), atol=1)
    flat = images.reshape(12, -1).astype(np.int16)
    assert all(np.abs(flat[i] - flat[j]).mean() > 5 for i in range(12) for j in range(i))  # all different
    assert png(tmp_path / "grid.png").shape == (3 * 64, 4 * 64, 3)  # ceil(sqrt(12)) = 4 columns


def test_sample_network_by_name(tmp_path, people):
    ok("sample", "--network", "faces", "--seeds", "3,4", "--outdir", tmp_path)
    got = np.stack([png(tmp_path / f"seed{s:04d}.png") for s in (3, 4)])
    faces = stylegen.load_network(bundled.bundled_path("faces"))
    np.testing.assert_allclose(got, library_images(faces, [3, 4], noise_mode="const"), atol=1)
    assert np.abs(got.astype(np.int16) - library_images(people, [3, 4], noise_mode="const")).mean() > 5


def test_a_file_named_like_a_bundled_network_wins_in_the_cli(tmp_path, monkeypatch, nets):
    monkeypatch.chdir(tmp_path)
    Path("people").write_bytes(Path(nets["a"]).read_bytes())  # a 16x16 network called 'people'
    ok("sample", "--network", "people", "--seeds", "0", "--outdir", "o")
    assert png(tmp_path / "o" / "seed0000.png").shape == (16, 16, 3)


def test_cli_without_the_model_file_is_one_line_naming_the_option(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "MODELS_DIR", tmp_path)
    line = usage_error("sample", "--seeds", "0", "--outdir", tmp_path)
    assert "missing from this installation" in line and "--network" in line
    line = usage_error("mix", "--out", tmp_path / "m.png")
    assert "missing from this installation" in line and "--coarse" in line


def test_unknown_network_name_is_one_line_naming_the_option_and_the_names(tmp_path):
    line = usage_error("sample", "--network", "peeple", "--seeds", "0", "--outdir", tmp_path)
    assert "'--network'" in line and "peeple" in line and "people, faces" in line


def test_unusable_network_paths_are_one_line(tmp_path):
    import os

    long_name = "a" * 300  # the OS refuses the name itself (ENAMETOOLONG)
    line = usage_error("info", long_name)
    assert "File name too long" in line
    line = usage_error("mix", "--coarse", "people", "--fine", tmp_path / long_name, "--out", tmp_path / "m.png")
    assert "'--fine'" in line
    os.mkfifo(tmp_path / "pipe")
    line = usage_error("sample", "--network", tmp_path / "pipe", "--seeds", "0", "--outdir", tmp_path)
    assert "pipe: not a regular file" in line and "'--network'" in line
    line = usage_error("sample", "--network", tmp_path, "--seeds", "0", "--outdir", tmp_path)
    assert "is a directory" in line


def test_mix_without_networks_writes_the_figure(tmp_path, people):
    out = tmp_path / "mix.png"
    ok("mix", "--out", out)
    grid = png(out).astype(np.int16)
    assert grid.shape == (6 * 64, 6 * 64, 3)  # 5 sources + 5 destinations + the corner

    def cell(row: int, col: int) -> np.ndarray:
        return grid[64 * row : 64 * (row + 1), 64 * col : 64 * (col + 1)]

    src = library_images(people, range(5), noise_mode="const")  # --coarse-seeds 0-4
    dst = library_images(people, range(5, 10), noise_mode="const")  # --fine-seeds 5-9
    for i in range(5):
        assert np.abs(cell(0, i + 1) - src[i]).max() <= 1 and np.abs(cell(i + 1, 0) - dst[i]).max() <= 1
        mixed = cell(i + 1, i + 1)  # destination i with source i's coarse styles: neither of them
        assert np.abs(mixed - src[i]).mean() > 3 and np.abs(mixed - dst[i]).mean() > 3


def test_mix_layer_swapping_between_the_bundled_networks(tmp_path):
    out = tmp_path / "swap.png"
    result = ok(
        "mix", "--coarse", "people", "--fine", "faces", "--coarse-seeds", "0-1", "--fine-seeds", "2-3", "--out", out
    )
    assert "Layer swapping" in result.output
    assert f"DST network: {bundled.bundled_path('faces')}" in result.output
    grid = png(out)
    assert grid.shape == (3 * 64, 3 * 64, 3)
    cell = grid[64:128, 64:128].astype(np.int16)
    top, left = grid[:64, 64:128].astype(np.int16), grid[64:128, :64].astype(np.int16)
    assert np.abs(cell - top).mean() > 1 and np.abs(cell - left).mean() > 1  # a real blend of both


def test_info_accepts_a_bundled_name():
    result = ok("info", "faces")
    assert "parent" in result.output and "Open Font License" in result.output


@pytest.mark.skipif(not EMOJI_FONT.is_file(), reason="needs fonts-noto-color-emoji (CI installs it)")
def test_people_samples_look_like_the_training_emoji(people, tmp_path):
    """Behaviour of the trained weights, not just their plumbing: the mean sample matches the
    mean training image (white background, a centred figure) and samples are as varied as the
    data; a broken, untrained or collapsed network fails this."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "emoji_dataset.py"
    data = tmp_path / "people.zip"
    subprocess.run([sys.executable, str(script), "people", str(data)], check=True, capture_output=True)
    with zipfile.ZipFile(data) as z:
        real = np.stack(
            [np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB")) for n in z.namelist() if n.endswith(".png")]
        ).astype(np.float64)
        assert json.loads(z.read("provenance.json"))["images"] == len(real)
    fake = library_images(people, range(256), noise_mode="const").astype(np.float64)
    corr = np.corrcoef(real.mean(0).ravel(), fake.mean(0).ravel())[0, 1]
    assert corr > 0.9, corr
    corners = fake[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.median(corners) > 200  # white background like every training image
    ratio = fake.std(0).mean() / real.std(0).mean()
    assert 0.6 < ratio < 1.4, ratio
    torch.manual_seed(0)
    random = stylegen.Generator(people.config).eval()
    with torch.inference_mode():
        untrained = stylegen.to_uint8(random(torch.randn(64, people.z_dim))).numpy().astype(np.float64)
    assert np.corrcoef(real.mean(0).ravel(), untrained.mean(0).ravel())[0, 1] < corr


def test_mix_ws_file_through_a_bundled_network(tmp_path):
    import hashlib

    ok("sample", "--network", "faces", "--seeds", "3-4", "--save-ws", "--outdir", tmp_path / "s")
    ws = tmp_path / "s" / "ws.npz"
    with np.load(ws) as data:  # which network made them, by content
        assert str(data["network_name"]) == "emoji-faces-64.pkl"
        faces_sha = hashlib.sha256(bundled.bundled_path("faces").read_bytes()).hexdigest()
        assert str(data["network_sha256"]) == faces_sha
    result = ok("mix", "--network", "faces", "--fine", ws, "--coarse-seeds", "0", "--out", tmp_path / "m.png")
    assert f"SRC network: {bundled.bundled_path('faces')}" in result.output
    assert "Warning" not in result.output
    # Drawn through another network of the same shapes: it works, with a warning naming both.
    result = ok("mix", "--network", "people", "--fine", ws, "--coarse-seeds", "0", "--out", tmp_path / "p.png")
    warning = f"Warning: {ws} was made with emoji-faces-64.pkl (sha256 {faces_sha[:12]}...), not with"
    assert warning in result.output and str(bundled.bundled_path("people")) in result.output
    # The left column is the ws file's rows drawn through 'faces': the sampled images themselves.
    grid = png(tmp_path / "m.png")
    for j, seed in enumerate((3, 4)):
        left = grid[64 * (j + 1) : 64 * (j + 2), :64].astype(np.int16)
        assert np.abs(left - png(tmp_path / "s" / f"seed{seed:04d}.png")).max() <= 1
    # --network next to two networks would be ignored: refused instead.
    usage_error("mix", "--network", "faces", "--coarse", "people", "--out", tmp_path / "x.png", match="'--network'")


def test_projecting_a_people_sample_recovers_it(tmp_path):
    """Issue 6's acceptance path, shortened: a bundled-network image of a known seed, written by
    `stylegen sample`, projected back with `stylegen project` (offline distance: no VGG weights
    here) comes back above 25 dB and much closer than where it started, and the projected ws work
    as a mixing destination. (500 steps and the timing: bench/project.py, docs/benchmarks.md.)"""
    import re

    ok("sample", "--seeds", "5", "--outdir", tmp_path / "s")
    target = tmp_path / "s" / "seed0005.png"
    out = tmp_path / "proj"
    result = ok("project", "--network", "people", "--target", target, "--steps", PROJECTION_STEPS, "--distance", "offline",
                "--outdir", out)  # fmt: skip
    psnr = re.search(r"PSNR ([\d.]+) dB at the start -> ([\d.]+) dB", result.output)
    dist = re.search(r"Distance \(.*\) ([\d.]+) at the start -> ([\d.]+)", result.output)
    assert psnr and dist, result.output
    start, end = float(psnr[1]), float(psnr[2])
    assert start < 20 and end >= 25, result.output
    assert float(dist[2]) < 0.25 * float(dist[1]), result.output
    # PSNR as printed agrees with the files: the target PNG vs the written projection.
    mse = np.mean((png(out / "proj.png").astype(np.float64) - png(target).astype(np.float64)) ** 2)
    assert abs(10 * np.log10(255**2 / mse) - end) < 0.5
    ok("mix", "--fine", out / "ws.npz", "--coarse-seeds", "0-1", "--out", tmp_path / "m.png")
    assert png(tmp_path / "m.png").shape == (128, 192, 3)
