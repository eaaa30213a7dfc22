"""The `stylegen` command line: sample, mix, info, doctor, error reporting, committed --help texts."""

from __future__ import annotations

import pickle

import cli_helpers
import numpy as np
import pytest
import torch
from cli_helpers import OFFICIAL, OFFICIAL_REF, REPO, library_images, ok, png, usage_error
from PIL import Image

import stylegen
from stylegen.cli import common
from stylegen.cli.main import help_texts
from stylegen.formats import images

_ref_ops = cli_helpers._ref_ops
nets = cli_helpers.nets


# ---------------------------------------------------------------------------------------------
# Option parsing


@pytest.mark.parametrize(
    "text, seeds",
    [
        ("0-3", [0, 1, 2, 3]),
        ("1,5,7-9", [1, 5, 7, 8, 9]),
        ("7", [7]),
        (" 2 , 0-1 ", [2, 0, 1]),
        ("3,3,2-3", [3, 2]),
    ],
)
def test_parse_seeds(text, seeds):
    assert common.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["5-2", "a-b", "-3", "", " ", "1,,2", "1-", "1.5", "4294967296"])
def test_parse_seeds_refuses(text):
    with pytest.raises(ValueError):
        common.parse_seeds(text)


def test_make_grid():
    ims = [np.full([2, 3, 1], k, np.uint8) for k in range(5)]
    grid = images.make_grid(ims)  # 3 columns, 2 rows, last cell blank
    assert grid.shape == (4, 9, 1)
    assert grid[2, 3, 0] == 4 and grid[3, 8, 0] == 255
    assert images.make_grid([None, *ims[:3]], cols=2)[0, 0, 0] == 255


# ---------------------------------------------------------------------------------------------
# sample


def test_sample_writes_exactly_the_seeds(nets, tmp_path):
    ok("sample", "--network", nets["a"], "--seeds", "1,5,7-9", "--outdir", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"seed{s:04d}.png" for s in (1, 5, 7, 8, 9)]


def test_sample_matches_library(nets, tmp_path):
    ok(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        "0-4",
        "--batch",
        5,
        "--outdir",
        tmp_path,
    )
    expected = library_images(stylegen.load_network(nets["a"]), range(5))
    for k in range(5):
        assert np.array_equal(png(tmp_path / f"seed{k:04d}.png"), expected[k])


def test_sample_batches_do_not_change_images(nets, tmp_path):
    # Batch 1 takes another conv path (grouped conv): allow one uint8 level.
    ok(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        "0-2",
        "--batch",
        1,
        "--outdir",
        tmp_path / "b1",
    )
    ok(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        "0-2",
        "--batch",
        2,
        "--outdir",
        tmp_path / "b2",
    )
    for k in range(3):
        a, b = (
            png(tmp_path / "b1" / f"seed{k:04d}.png"),
            png(tmp_path / "b2" / f"seed{k:04d}.png"),
        )
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_sample_grid_and_ws(nets, tmp_path):
    ok(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        "3-9",
        "--grid",
        "--save-ws",
        "--batch",
        3,
        "--trunc",
        0.7,
        "--trunc-cutoff",
        2,
        "--outdir",
        tmp_path,
    )
    grid = png(tmp_path / "grid.png")
    assert grid.shape == (
        3 * 16,
        3 * 16,
        3,
    )  # 7 images: ceil(sqrt(7)) = 3 columns, 3 rows
    assert np.array_equal(grid[16:32, 0:16], png(tmp_path / "seed0006.png"))
    data = np.load(tmp_path / "ws.npz")
    assert data["ws"].dtype == np.float32 and data["ws"].shape == (7, 6, 16)
    assert data["seeds"].tolist() == list(range(3, 10))
    G = stylegen.load_network(nets["a"])
    z = torch.cat([stylegen.seed_to_z(s, 16) for s in range(3, 10)])
    ws = G.mapping(z, None, truncation_psi=0.7, truncation_cutoff=2).numpy()
    np.testing.assert_allclose(data["ws"], ws, rtol=0, atol=1e-6)
    assert float(data["truncation_psi"]) == pytest.approx(0.7) and int(data["truncation_cutoff"]) == 2


def test_sample_truncation_and_noise_change_images(nets, tmp_path):
    outs = {}
    for name, extra in [
        ("plain", []),
        ("trunc", ["--trunc", 0.5]),
        ("cut", ["--trunc", 0.5, "--trunc-cutoff", 2]),
        ("none", ["--noise-mode", "none"]),
    ]:
        ok(
            "sample",
            "--network",
            nets["a"],
            "--seeds",
            0,
            "--outdir",
            tmp_path / name,
            *extra,
        )
        outs[name] = png(tmp_path / name / "seed0000.png")
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(outs[a], outs[b]), (a, b)
    expected = library_images(stylegen.load_network(nets["a"]), [0], truncation_psi=0.5, truncation_cutoff=2)
    assert np.array_equal(outs["cut"], expected[0])


def test_sample_conditional_and_grayscale(nets, tmp_path):
    usage_error(
        "sample",
        "--network",
        nets["cond"],
        "--seeds",
        0,
        "--outdir",
        tmp_path,
        match="--class",
    )
    usage_error(
        "sample",
        "--network",
        nets["cond"],
        "--seeds",
        0,
        "--class",
        4,
        "--outdir",
        tmp_path,
        match="0-3",
    )
    usage_error(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        0,
        "--class",
        1,
        "--outdir",
        tmp_path,
        match="unconditional",
    )
    ok(
        "sample",
        "--network",
        nets["cond"],
        "--seeds",
        "0-1",
        "--class",
        2,
        "--outdir",
        tmp_path / "c",
    )
    G = stylegen.load_network(nets["cond"])
    c = torch.zeros([2, 4])
    c[:, 2] = 1
    expected = library_images(G, [0, 1], c=c)
    assert np.array_equal(png(tmp_path / "c" / "seed0001.png"), expected[1])
    ok("sample", "--network", nets["gray"], "--seeds", 0, "--outdir", tmp_path / "g")
    assert Image.open(tmp_path / "g" / "seed0000.png").mode == "L"


@pytest.mark.parametrize("seeds", ["5-2", "a-b", "-3", "", "1,,2"])
def test_sample_bad_seeds(nets, tmp_path, seeds):
    usage_error(
        "sample",
        "--network",
        nets["a"],
        f"--seeds={seeds}",
        "--outdir",
        tmp_path,
        match="'--seeds'",
    )
    assert not any(tmp_path.iterdir())


def test_sample_bad_networks(nets, tmp_path):
    usage_error(
        "sample",
        "--network",
        tmp_path / "missing.pkl",
        "--seeds",
        0,
        match="missing.pkl",
    )
    not_net = tmp_path / "dict.pkl"
    not_net.write_bytes(pickle.dumps({"a": 1, "b": [1, 2]}))
    usage_error(
        "sample",
        "--network",
        not_net,
        "--seeds",
        0,
        "--outdir",
        tmp_path,
        match="dict.pkl",
    )
    noise = tmp_path / "noise.pkl"
    noise.write_bytes(np.random.RandomState(0).bytes(4096))
    usage_error(
        "sample",
        "--network",
        noise,
        "--seeds",
        0,
        "--outdir",
        tmp_path,
        match="noise.pkl",
    )
    torch_file = tmp_path / "tensor.pkl"
    torch.save({"weights": torch.zeros(3)}, torch_file)
    usage_error(
        "sample",
        "--network",
        torch_file,
        "--seeds",
        0,
        "--outdir",
        tmp_path,
        match="tensor.pkl",
    )
    usage_error(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        0,
        "--outdir",
        nets["b"],
        match="b.pkl",
    )


def test_sample_device_cuda_without_gpu(nets, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    usage_error(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        0,
        "--device",
        "cuda",
        "--outdir",
        tmp_path,
        match="--device",
    )


# ---------------------------------------------------------------------------------------------
# info and doctor


def test_info_ours(nets):
    out = ok("info", nets["a"]).output
    for line in [
        "stylegen v1",
        "16x16",
        "num_ws          6",
        "params G_ema",
        "params G ",
        "kimg            12.5",
    ]:
        assert line in out, (line, out)
    G = stylegen.load_network(nets["a"])
    assert f"{sum(p.numel() for p in G.parameters()):,}" in out


def test_info_refuses_non_networks(tmp_path):
    bad = tmp_path / "x.pkl"
    bad.write_bytes(b"hello")
    usage_error("info", bad, match="x.pkl")


@pytest.mark.skipif(not OFFICIAL.exists(), reason="NVIDIA fixture not available")
def test_info_official():
    out = ok("info", OFFICIAL).output
    assert "NVIDIA pickle" in out and "32x32" in out and "mapping_layers  4" in out and "channel_base    2048" in out


@pytest.mark.skipif(not OFFICIAL_REF.exists(), reason="NVIDIA fixture not available")
def test_sample_reproduces_official_images(tmp_path):
    ref = np.load(OFFICIAL_REF)
    setting = next(k for k in range(len(ref["psis"])) if ref["psis"][k] == 1 and ref["cutoffs"][k] < 0)
    seeds = ref["seeds"].tolist()[:4]
    assert seeds == [0, 1, 2, 3]
    ok("sample", "--network", OFFICIAL, "--seeds", "0-3", "--outdir", tmp_path)
    expected = stylegen.to_uint8(torch.from_numpy(ref["images"][setting, :4])).numpy()
    for k, seed in enumerate(seeds):
        diff = png(tmp_path / f"seed{seed:04d}.png").astype(int) - expected[k].astype(int)
        assert np.abs(diff).max() <= 1, seed


def test_doctor(monkeypatch):
    from stylegen import cuda_ops
    from stylegen.cli import doctor

    def fake_load(kind, verbose=False):
        if kind == "cuda":
            raise cuda_ops.PluginUnavailable("no CUDA toolkit found (nvcc)")
        return object()

    monkeypatch.setattr(cuda_ops, "load_plugin", fake_load)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # with a GPU the CUDA plugin is expected
    assert doctor.plugin_status("cpu", False) == "works"
    assert doctor.plugin_status("cuda", False) == "unavailable: no CUDA toolkit found (nvcc)"
    try:
        from stylegen.cuda_ops import doctor as ops_doctor

        monkeypatch.setattr(ops_doctor, "report", lambda: "REPORT")
    except ImportError:
        pass
    out = ok("doctor").output
    assert "REPORT" in out or ("torch" in out and "cuda plugin" in out and "no CUDA toolkit" in out)


# ---------------------------------------------------------------------------------------------
# Committed --help texts


def test_help_texts_are_committed():
    """Regenerate with: stylegen --write-help docs/cli_help"""
    texts = help_texts()
    assert {"main", "sample", "mix", "info", "doctor"} <= set(texts)
    folder = REPO / "docs" / "cli_help"
    fix = "run `stylegen --write-help docs/cli_help`"
    for name, text in texts.items():
        path = folder / f"{name}.txt"
        assert path.exists(), f"{path} missing: {fix}"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: {fix}"
    stale = sorted(p.name for p in folder.glob("*.txt") if p.stem not in texts)
    assert not stale, f"no such commands: {stale}; delete them"
