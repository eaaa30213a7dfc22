"""What the page computes (`stylegen.ui.studio.Studio`), against the commands, without a browser:
StyleGAN2 and StyleGAN3, layer swapping, photos from ws files, the files the page offers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run
from PIL import Image

from stylegen.ui.studio import Studio, error_line


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _cli(*args) -> None:
    r = run(*args)
    assert r.exit_code == 0, r.output


@pytest.fixture
def studio(tmp_path):
    return Studio("cpu", workdir=tmp_path / "ui")


def test_seed_edit_and_truncation_equal_sample(studio, tmp_path):
    net = studio.network("people")
    dirs = tmp_path / "dirs.npz"
    _cli("directions", "--out", dirs, "--top", 3)
    _cli("sample", "--seeds", 11, "--trunc", 0.7, "--edit", f"{dirs}:1:-2.5", "--outdir", tmp_path / "s")
    ws = studio.edited_ws(net, studio.seed_ws(net, 11, 0.7), "all", [0, -2.5, 0])
    assert np.array_equal(studio.render(net, ws), _png(tmp_path / "s" / "seed0011.png"))
    base = studio.seed_ws(net, 11, 0.7)
    assert studio.edited_ws(net, base, "all", [0, 0, 0]) is base  # strength 0: unchanged


def test_stylegen3_with_transform_equals_sample(studio, sg3, tmp_path):
    net = studio.network(str(sg3["path"]))
    assert net.is_stylegan3
    out = tmp_path / "s"
    _cli("sample", "--network", sg3["path"], "--seeds", 2, "--translate", "0.3,-0.2", "--rotate", 20, "--outdir", out)
    shown = studio.render(net, studio.seed_ws(net, 2), (0.3, -0.2), 20.0)
    assert np.array_equal(shown, _png(out / "seed0002.png"))
    plain = studio.render(net, studio.seed_ws(net, 2))  # the transform is not left behind
    _cli("sample", "--network", sg3["path"], "--seeds", 2, "--outdir", tmp_path / "p")
    assert np.array_equal(plain, _png(tmp_path / "p" / "seed0002.png"))
    assert not np.array_equal(plain, shown)
    ws = studio.edited_ws(net, studio.seed_ws(net, 2), "coarse", [1.5])
    assert not np.array_equal(studio.render(net, ws), plain)


def test_layer_swap_equals_mix_and_saves_the_network(studio, tmp_path):
    src, dst = studio.network("people"), studio.network("faces")
    image, G, ws = studio.mix(src, dst, studio.seed_ws(src, 1), studio.seed_ws(dst, 2), "coarse")
    out = tmp_path / "m"
    _cli("mix", "--coarse", "people", "--fine", "faces", "--coarse-seeds", 1, "--fine-seeds", 2, "--outdir", out,
         "--out", out / "g.png", "--save-network", tmp_path / "swap.pkl")  # fmt: skip
    assert np.array_equal(image, _png(out / "mix-c0001-f0002.png"))
    saved = studio.write_network(G, "swapped")
    _cli("sample", "--network", saved, "--seeds", 0, "--outdir", tmp_path / "a")
    _cli("sample", "--network", tmp_path / "swap.pkl", "--seeds", 0, "--outdir", tmp_path / "b")
    assert np.array_equal(_png(tmp_path / "a" / "seed0000.png"), _png(tmp_path / "b" / "seed0000.png"))
    assert studio.mix(src, dst, studio.seed_ws(src, 1), studio.seed_ws(dst, 2), "coarse")[1] is G  # cached


def test_photos_from_ws_files_and_the_ws_download(studio, tmp_path):
    net = studio.network("people")
    out = tmp_path / "s"
    _cli("sample", "--seeds", "3,4", "--batch", 1, "--save-ws", "--outdir", out)  # the page renders one at a time
    names = studio.load_ws_photo(net, out / "ws.npz")
    assert names == ["ws:0003", "ws:0004"]
    ws = studio.base_ws(net, 0, 1.0, names[1])
    assert np.array_equal(studio.render(net, ws), _png(out / "seed0004.png"))
    saved = studio.write_ws(net, ws, "seed0004", 4, 1.0)
    _cli("sample", "--ws", saved, "--outdir", tmp_path / "again")
    assert np.array_equal(_png(tmp_path / "again" / "seed0004.png"), _png(out / "seed0004.png"))
    png = studio.write_png(studio.render(net, ws), "x")
    assert np.array_equal(_png(png), _png(out / "seed0004.png"))


def test_user_errors_are_the_cli_lines(studio, tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"nope")
    with pytest.raises(Exception) as e:
        studio.network(str(bad))
    cli = run("sample", "--network", bad, "--seeds", 0, "--outdir", tmp_path / "o").output.strip()
    assert error_line(e.value) == cli
    net = studio.network("people")
    with pytest.raises(Exception, match="no such photo"):
        studio.base_ws(net, 0, 1.0, "missing")
    with pytest.raises(Exception, match="seeds are integers"):
        studio.seed_ws(net, -1)
    sg2_ws = torch.zeros([1, net.G.num_ws + 1, net.G.w_dim])
    studio.photos["odd"] = sg2_ws
    with pytest.raises(Exception, match="do not fit"):
        studio.base_ws(net, 0, 1.0, "odd")


def test_networks_are_loaded_once(studio, monkeypatch):
    import stylegen

    first = studio.network("people")
    monkeypatch.setattr(stylegen, "load_network", lambda *a, **k: pytest.fail("loaded again"))
    assert studio.network("people") is first
    assert studio.network(str(first.path)) is first  # the same file by name or by path
