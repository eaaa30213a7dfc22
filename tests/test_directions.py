"""SeFa editing directions: `stylegen directions`, `sample --edit`, `sample --ws`, and the library behind them.

Oracles: numpy's SVD of the style-affine weights stacked here straight from the state dict (rows
normalised as SeFa's `factorize_weight` does); the ws layout of DESIGN.md (StyleGAN2 coarse =
b4.conv1, b8.conv0, b8.conv1) and of StyleGAN3 (ws[i + 1] drives layer i, the last layer is toRGB).
"""

from __future__ import annotations

import re
import shutil

import cli_helpers
import numpy as np
import pytest
import torch
from cli_helpers import SHARED, ok, png, usage_error

import stylegen
from stylegen.editing import directions as sefa
from stylegen.editing.mixing import ws_from_seeds
from stylegen.formats import bundled
from stylegen.formats.images import to_numpy_images
from stylegen.formats.ws_file import save_ws_file

_ref_ops = cli_helpers._ref_ops
nets = cli_helpers.nets

SG3T = SHARED / "compat" / "sg3t_small.pkl"


@pytest.fixture(scope="module")
def people():
    return str(bundled.resolve("people"))


def _svd_oracle(G, pattern: str):
    """Unit-row stack of the state dict's affine weights whose names match `pattern`, in ws order;
    (right singular vectors [w_dim, w_dim] by descending singular value, squared singular values)."""
    sd = G.state_dict()
    names = [k for k in sd if re.fullmatch(pattern, k)]
    names.sort(key=lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)])
    A = np.concatenate([sd[k].double().numpy() for k in names])
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    _, s, vt = np.linalg.svd(A)
    return names, vt, s**2


def _check_against_oracle(d, vt, ev):
    D = d.directions.astype(np.float64)
    assert np.allclose(D @ D.T, np.eye(len(D)), atol=1e-5)
    assert np.all(np.diff(d.eigenvalues) <= 0)
    assert np.allclose(d.eigenvalues, ev[: len(d)], rtol=1e-9)
    for k in range(3):  # distinct eigenvalues: each direction is the oracle's up to sign
        assert abs(D[k] @ vt[k]) == pytest.approx(1, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Factorization


def test_sg2_directions_are_sefa(people):
    G = stylegen.load_network(people)
    d = sefa.factorize(G, "all", top=20, network=people)
    names, vt, ev = _svd_oracle(G, r"synthesis\.b\d+\.conv[01]\.affine\.weight")
    assert len(d.layers) == len(names) == 9  # 64x64: b4.conv1 + two convs per block 8..64
    assert d.ws_indices == tuple(range(G.num_ws - 1))  # the last ws drives only the final toRGB
    _check_against_oracle(d, vt, ev)
    assert d.network_name == "emoji-people-64.pkl" and len(d.network_sha256) == 64


def test_sg2_levels_and_torgb(people):
    G = stylegen.load_network(people)
    d = sefa.factorize(G, "coarse", top=5)
    assert d.ws_indices == (0, 1, 2) and d.layers == ("b4.conv1", "b8.conv0", "b8.conv1")
    _, vt, ev = _svd_oracle(G, r"synthesis\.(b4\.conv1|b8\.conv[01])\.affine\.weight")
    _check_against_oracle(d, vt, ev)
    d = sefa.factorize(G, "all", top=5, torgb=True)
    assert d.ws_indices == tuple(range(G.num_ws))
    _, vt, ev = _svd_oracle(G, r"synthesis\.b\d+\.(conv[01]|torgb)\.affine\.weight")
    _check_against_oracle(d, vt, ev)


def test_sg3_directions_leave_out_input_and_torgb():
    G = stylegen.load_network(SG3T)
    d = sefa.factorize(G, "all", top=10)
    last = G.synthesis.layer_names[-1]  # the toRGB layer
    names, vt, ev = _svd_oracle(G, rf"synthesis\.(?!{last}\.)L\d+_\d+_\d+\.affine\.weight")
    assert len(names) == G.num_ws - 2 and "synthesis.input.affine.weight" not in names
    assert d.ws_indices == tuple(range(1, G.num_ws - 1))
    _check_against_oracle(d, vt, ev)


def test_bad_levels_and_a_torgb_only_selection(people):
    G = stylegen.load_network(people)
    with pytest.raises(stylegen.errors.InputError, match="--levels"):
        sefa.factorize(G, "ultra")
    with pytest.raises(stylegen.errors.InputError, match="toRGB"):
        sefa.factorize(G, f"ws:{G.num_ws - 1}")


def test_file_round_trip(tmp_path, people):
    G = stylegen.load_network(people)
    d = sefa.factorize(G, "middle", top=4, network=people)
    sefa.save_directions(tmp_path / "d.npz", d)
    e = sefa.load_directions(tmp_path / "d.npz")
    assert np.array_equal(e.directions, d.directions) and np.array_equal(e.eigenvalues, d.eigenvalues)
    assert (e.ws_indices, e.layers, e.network_sha256) == (d.ws_indices, d.layers, d.network_sha256)
    with np.load(tmp_path / "d.npz") as data:
        assert data["directions"].shape == (4, G.w_dim) and data["directions"].dtype == np.float32
        assert list(data["ws_indices"]) == [3, 4, 5, 6]


# ---------------------------------------------------------------------------------------------
# Applying them


def test_apply_direction_on_ws_of_a_file(tmp_path, people):
    """The library moves any ws, e.g. a ws file's (`sample --save-ws`, `project`)."""
    ok("sample", "--network", people, "--seeds", "3,4", "--save-ws", "--outdir", tmp_path)
    ws = torch.from_numpy(np.load(tmp_path / "ws.npz")["ws"])
    d = sefa.factorize(stylegen.load_network(people), "coarse", top=2)
    moved = sefa.apply_direction(ws, d, 1, -2.0).numpy()
    expected = ws.numpy().copy()
    expected[:, [0, 1, 2]] += -2.0 * d.directions[1]
    assert np.array_equal(moved, expected)
    assert np.array_equal(sefa.apply_direction(ws, d, 1, 0.0), ws)


def test_sample_edit_sg2(tmp_path, people):
    ok("directions", "--network", people, "--levels", "middle", "--top", "3", "--out", tmp_path / "d.npz")
    common = ["sample", "--network", people, "--seeds", "0,7", "--trunc", "0.7"]
    ok(*common, "--outdir", tmp_path / "plain")
    ok(*common, "--edit", f"{tmp_path / 'd.npz'}:1:0", "--outdir", tmp_path / "zero")
    ok(*common, "--edit", f"{tmp_path / 'd.npz'}:1:2.5", "--save-ws", "--outdir", tmp_path / "moved")
    for seed in (0, 7):
        name = f"seed{seed:04d}.png"
        assert np.array_equal(png(tmp_path / "zero" / name), png(tmp_path / "plain" / name))
        assert not np.array_equal(png(tmp_path / "moved" / name), png(tmp_path / "plain" / name))
    # After truncation, at the file's ws only: the saved ws are the truncated ws plus 2.5 * n_1.
    G = stylegen.load_network(people)
    with np.load(tmp_path / "d.npz") as data:
        n, idx = data["directions"][1], list(data["ws_indices"])
    expected = ws_from_seeds(G, [0, 7], 0.7).numpy()
    expected[:, idx] += 2.5 * n
    assert np.allclose(np.load(tmp_path / "moved" / "ws.npz")["ws"], expected, atol=1e-5)
    with torch.inference_mode():
        img = stylegen.to_uint8(G.freeze().synthesis(torch.from_numpy(expected))).numpy()
    assert np.abs(img[1].astype(int) - png(tmp_path / "moved" / "seed0007.png")).max() <= 1


def test_sample_edits_add_up(tmp_path, nets):
    ok("directions", "--network", nets["a"], "--out", tmp_path / "d.npz")
    f = tmp_path / "d.npz"
    ok(
        "sample",
        "--network",
        nets["a"],
        "--seeds",
        "2",
        "--edit",
        f"{f}:0:1.5",
        "--save-ws",
        "--outdir",
        tmp_path / "one",
    )
    ok("sample", "--network", nets["a"], "--seeds", "2", "--edit", f"{f}:0:1", "--edit", f"{f}:0:0.5",
       "--save-ws", "--outdir", tmp_path / "two")  # fmt: skip
    assert np.allclose(
        np.load(tmp_path / "one" / "ws.npz")["ws"], np.load(tmp_path / "two" / "ws.npz")["ws"], atol=1e-6
    )


def test_sample_edit_sg3(tmp_path):
    ok("directions", "--network", SG3T, "--levels", "coarse", "--top", "2", "--out", tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as data:
        assert 0 not in list(data["ws_indices"])  # the input affine is a transform, not a style
    common = ["sample", "--network", SG3T, "--seeds", "5"]
    ok(*common, "--outdir", tmp_path / "plain")
    ok(*common, "--edit", f"{tmp_path / 'd.npz'}:0:0", "--outdir", tmp_path / "zero")
    ok(*common, "--edit", f"{tmp_path / 'd.npz'}:0:4", "--outdir", tmp_path / "moved")
    plain = png(tmp_path / "plain" / "seed0005.png")
    assert np.array_equal(png(tmp_path / "zero" / "seed0005.png"), plain)
    assert not np.array_equal(png(tmp_path / "moved" / "seed0005.png"), plain)


# ---------------------------------------------------------------------------------------------
# sample --ws: the rows of a ws file instead of seeds


@pytest.mark.parametrize("net", ["people", SG3T], ids=["people", "sg3t"])
def test_sample_ws_round_trip_is_bit_identical(tmp_path, net):
    """A `sample --save-ws` file gives back the very PNGs of its seeds (10 seeds: two batches)."""
    ok(
        "sample",
        "--network",
        net,
        "--seeds",
        "0-9",
        "--trunc",
        "0.7",
        "--save-ws",
        "--grid",
        "--outdir",
        tmp_path / "a",
    )
    ok("sample", "--network", net, "--ws", tmp_path / "a" / "ws.npz", "--save-ws", "--grid", "--outdir", tmp_path / "b")
    names = [f"seed{s:04d}.png" for s in range(10)] + ["grid.png"]
    assert sorted(p.name for p in (tmp_path / "b").glob("*.png")) == sorted(names)
    for name in names:
        assert np.array_equal(png(tmp_path / "b" / name), png(tmp_path / "a" / name)), name
    with np.load(tmp_path / "a" / "ws.npz") as a, np.load(tmp_path / "b" / "ws.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:  # the ws, seeds, truncation and network carried over
            assert np.array_equal(a[key], b[key]), key


def _projected_file(path, G, network, seeds=None):
    """A ws file as `project` writes it: ws off the seeds' (no seed, seeds = -1 by default)."""
    ws = ws_from_seeds(G, [3, 4], 0.8) + 0.2 * torch.randn(
        [2, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(0)
    )
    save_ws_file(path, ws, seeds, network=network)
    return ws


def test_sample_ws_projected_rows_are_named_by_file(tmp_path, people):
    G = stylegen.load_network(people)
    ws = _projected_file(tmp_path / "proj.npz", G, people)
    ok("sample", "--network", people, "--ws", tmp_path / "proj.npz", "--outdir", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["proj0.png", "proj1.png"]
    with torch.inference_mode():
        want = to_numpy_images(G.freeze().synthesis(ws, noise_mode="const"))  # one batch, as sample
    assert np.array_equal(png(tmp_path / "out" / "proj1.png"), want[1])
    _projected_file(tmp_path / "mixed.npz", G, people, seeds=[5, -1])  # a row with a seed keeps its name
    ok("sample", "--network", people, "--ws", tmp_path / "mixed.npz", "--outdir", tmp_path / "mixed")
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == ["mixed1.png", "seed0005.png"]


def test_sample_ws_with_edit_is_apply_direction(tmp_path, people):
    ok("directions", "--network", people, "--levels", "coarse", "--top", "2", "--out", tmp_path / "d.npz")
    edit = f"{tmp_path / 'd.npz'}:1:2.5"
    ok("sample", "--network", people, "--seeds", "0,7", "--trunc", "0.7", "--save-ws", "--outdir", tmp_path / "a")
    ok("sample", "--network", people, "--seeds", "0,7", "--trunc", "0.7", "--edit", edit, "--outdir", tmp_path / "e")
    ok("sample", "--network", people, "--ws", tmp_path / "a" / "ws.npz", "--edit", edit, "--save-ws",
       "--outdir", tmp_path / "b")  # fmt: skip
    stored = torch.from_numpy(np.load(tmp_path / "a" / "ws.npz")["ws"])
    moved = sefa.apply_direction(stored, sefa.load_directions(tmp_path / "d.npz"), 1, 2.5)
    assert np.array_equal(np.load(tmp_path / "b" / "ws.npz")["ws"], moved.numpy())
    for seed in (0, 7):  # the same ws in the same batch as `sample --seeds --edit`
        name = f"seed{seed:04d}.png"
        assert np.array_equal(png(tmp_path / "b" / name), png(tmp_path / "e" / name))


def test_sample_needs_exactly_one_source(tmp_path, people):
    ok("sample", "--network", people, "--seeds", "0", "--save-ws", "--outdir", tmp_path)
    f, out = tmp_path / "ws.npz", ["--outdir", tmp_path / "x"]
    usage_error("sample", "--network", people, "--seeds", "0", "--ws", f, *out, match="--seeds and --ws")
    line = usage_error("sample", "--network", people, *out, match="--seeds")
    assert "--ws" in line
    for option, value in (("--trunc", "0.5"), ("--trunc-cutoff", "4"), ("--class", "0")):
        usage_error("sample", "--network", people, "--ws", f, option, value, *out, match=f"leave {option} out")
    usage_error("sample", "--network", people, "--ws", tmp_path / "none.npz", *out, match="--ws")
    assert not (tmp_path / "x").exists()


def test_sample_ws_file_that_does_not_fit(tmp_path, people, nets):
    ok("sample", "--network", nets["a"], "--seeds", "0,1", "--save-ws", "--outdir", tmp_path)  # w_dim 16
    out = ["--outdir", tmp_path / "x"]
    usage_error("sample", "--network", people, "--ws", tmp_path / "ws.npz", *out, match="do not fit the network")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    usage_error("sample", "--network", people, "--ws", tmp_path / "other.npz", *out, match="not a readable ws file")
    assert not list((tmp_path / "x").glob("*.png"))


# ---------------------------------------------------------------------------------------------
# Refusals and the figure


def test_directions_of_another_network_are_refused(tmp_path, nets):
    ok("directions", "--network", nets["a"], "--out", tmp_path / "d.npz")
    line = usage_error("sample", "--network", nets["b"], "--seeds", "0", "--edit", f"{tmp_path / 'd.npz'}:0:1",
                       "--outdir", tmp_path / "x", match="was made for a.pkl")  # fmt: skip
    assert "stylegen directions --network" in line
    # The same bytes under another name are the same network.
    shutil.copy(nets["a"], tmp_path / "copy.pkl")
    ok("sample", "--network", tmp_path / "copy.pkl", "--seeds", "0", "--edit", f"{tmp_path / 'd.npz'}:0:1",
       "--outdir", tmp_path / "y")  # fmt: skip


def test_bad_edit_values(tmp_path, nets):
    ok("directions", "--network", nets["a"], "--top", "2", "--out", tmp_path / "d.npz")
    f = tmp_path / "d.npz"
    base = ["sample", "--network", nets["a"], "--seeds", "0", "--outdir", tmp_path / "x", "--edit"]
    usage_error(*base, f"{f}:0", match="FILE:K:S")
    usage_error(*base, f"{f}:x:1", match="FILE:K:S")
    usage_error(*base, f"{f}:0:nan", match="finite")
    usage_error(*base, f"{tmp_path / 'none.npz'}:0:1", match="no such file")
    usage_error(*base, f"{f}:2:1", match="directions 0-1")
    np.savez(tmp_path / "other.npz", ws=np.zeros([1, 2, 3]))
    usage_error(*base, f"{tmp_path / 'other.npz'}:0:1", match="not a directions file")
    usage_error("directions", "--network", nets["a"], "--levels", "fine", "--out", f, match="--levels")


def test_figure(tmp_path, nets):
    ok("directions", "--network", nets["a"], "--top", "3", "--out", tmp_path / "d.npz",
       "--figure", tmp_path / "fig.png", "--seed", "4")  # fmt: skip
    fig = png(tmp_path / "fig.png")
    assert fig.shape == (3 * 16, 7 * 16, 3)  # rows = directions, columns = 7 strengths
    ok("sample", "--network", nets["a"], "--seeds", "4", "--outdir", tmp_path / "s")
    plain = png(tmp_path / "s" / "seed0004.png")
    for k in range(3):
        assert np.array_equal(fig[16 * k : 16 * (k + 1), 48:64], plain)  # the middle column: strength 0
        assert not np.array_equal(fig[16 * k : 16 * (k + 1), 96:112], plain)
