"""`train --resume FILE` from any loadable network: weights only, and the log says what it took."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import tiny
from PIL import Image

import stylegen
from stylegen import load_network
from stylegen.training.config import TrainConfig
from stylegen.training.distributed import Dist
from stylegen.training.loop import setup, train_step

CPU = Dist(0, 1, torch.device("cpu"))


@pytest.fixture(autouse=True)
def _ref_ops(monkeypatch):
    monkeypatch.setenv("STYLEGEN_OPS", "ref")


def _data(root, resolution: int, n: int = 8):
    root.mkdir()
    rng = np.random.RandomState(0)
    for i in range(n):
        Image.fromarray(rng.randint(0, 255, (resolution, resolution, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _cfg(data, outdir, resume) -> TrainConfig:
    return TrainConfig(
        data=str(data), outdir=str(outdir), preset="cpu32", batch=4, aug="none", grid=2, snap=1, kimg=0.004,
        resume=str(resume),
    )  # fmt: skip


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fine_tune_from_a_file_with_only_g_ema(tmp_path, capsys):
    """Like rosinality's convert layout: G and G_ema both start from G_ema, D fresh, all said."""
    src = tmp_path / "g_ema_only.pkl"
    G_ema = tiny(3)
    stylegen.save_network(src, G_ema=G_ema)
    st = setup(_cfg(_data(tmp_path / "data", 16), tmp_path / "run", src), CPU)
    err = capsys.readouterr().err
    assert "resuming weights only (no optimizer state, counters)" in err
    assert "the file has no G: G starts from G_ema's weights" in err
    assert "the file has no D: the discriminator starts from scratch" in err
    assert _equal(st.G, G_ema) and _equal(st.G_ema, G_ema) and st.step == 0
    assert st.G.config == G_ema.config  # the file's architecture, not the preset's
    assert st.D.config.channel_base == G_ema.config.channel_base
    train_step(st)
    assert not _equal(st.G, G_ema)  # it trains


def test_fine_tune_from_a_snapshot_whose_d_cannot_be_rebuilt(tmp_path, capsys):
    src = tmp_path / "bad_d.pkl"
    G = tiny(4)
    from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig

    D = Discriminator(DiscriminatorConfig(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32))
    stylegen.save_network(src, G=G, G_ema=G, D=D, training=None)
    data = torch.load(src, weights_only=True)
    data["D"]["state"].pop("b16.fromrgb.weight")
    torch.save(data, src)
    st = setup(_cfg(_data(tmp_path / "data", 16), tmp_path / "run", src), CPU)
    err = capsys.readouterr().err
    assert "D cannot be used ('D' cannot be rebuilt" in err and "the discriminator starts from scratch" in err
    assert _equal(st.G, G) and st.step == 0


def test_fine_tune_from_nvidia_pickle_says_weights_only(compat_dir, tmp_path, capsys):
    pkl = compat_dir / "official_small.pkl"
    st = setup(_cfg(_data(tmp_path / "data", 32), tmp_path / "run", pkl), CPU)
    err = capsys.readouterr().err
    assert "NVIDIA pickle" in err and "resuming weights only (no optimizer state, counters)" in err
    assert "discriminator starts from scratch" not in err
    assert _equal(st.G, load_network(pkl, "G")) and _equal(st.G_ema, load_network(pkl, "G_ema"))
    assert _equal(st.D, load_network(pkl, "D")) and st.step == 0


def test_fine_tune_from_rosinality_convert_layout(compat_dir, tmp_path, capsys):
    """{'g_ema', 'latent_avg'} only: G from G_ema, D fresh, weights only; all in the log."""
    pt = compat_dir / "rosinality_small_convert.pt"
    st = setup(_cfg(_data(tmp_path / "data", 32), tmp_path / "run", pt), CPU)
    err = capsys.readouterr().err
    assert "rosinality" in err and "resuming weights only (no optimizer state, counters)" in err
    assert "G starts from G_ema's weights" in err and "the discriminator starts from scratch" in err
    G_ema = load_network(pt)
    assert _equal(st.G, G_ema) and _equal(st.G_ema, G_ema) and st.step == 0


@pytest.mark.parametrize("name", ["tf_small.pkl", "rosinality_small.pt"])
def test_fine_tune_from_files_with_g_and_d(compat_dir, tmp_path, capsys, name):
    src = compat_dir / name
    st = setup(_cfg(_data(tmp_path / "data", 32), tmp_path / "run", src), CPU)
    err = capsys.readouterr().err
    assert "resuming weights only (no optimizer state, counters)" in err
    assert "starts from scratch" not in err and "starts from G" not in err
    assert _equal(st.G, load_network(src, "G")) and _equal(st.D, load_network(src, "D"))
    assert not _equal(st.G, st.G_ema)  # G_ema is the file's G_ema (Gs / g_ema), not a copy of G
    assert _equal(st.G_ema, load_network(src, "G_ema"))
