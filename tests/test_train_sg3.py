"""StyleGAN3 training: NVIDIA's stylegan3 recipe (presets, D input blur, magnitude EMAs), exact
resume of our snapshots, fine-tuning from NVIDIA's SG3 pickles and the --cfg mismatch refusal.

Expected values come from NVIDIA's train.py / loss.py / training_loop.py (read, not run), the
NVIDIA-written fixtures in shared/compat (their constructor kwargs and layer specs), scipy and
hand arithmetic.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from stylegen import load_network, load_snapshot
from stylegen.errors import InputError
from stylegen.formats.snapshot import save_network
from stylegen.networks.sg3_generator import Generator3
from stylegen.training import losses
from stylegen.training.config import PRESETS, TrainConfig
from stylegen.training.distributed import Dist
from stylegen.training.loop import _phases, loss_config, setup, train, train_step
from stylegen.training.losses import StyleGAN2Loss, blur_sigma
from stylegen.training.setup import stylegan3_config

CPU = Dist(0, 1, torch.device("cpu"))
ARCHS = ("stylegan3-t", "stylegan3-r")
# NVIDIA's recipe (the real presets) on tiny networks: 16 channels, 4 layers + RGB, batch 2.
TINY = {
    a: dataclasses.replace(
        PRESETS[a], channel_base=256, channel_max=16, z_dim=16, batch=2, sg3_layers=4, conv_clamp=None
    )
    for a in ARCHS
}


@pytest.fixture(autouse=True)
def tiny_presets(monkeypatch):
    for arch, preset in TINY.items():
        monkeypatch.setitem(PRESETS, f"tiny-{arch}", preset)


def _images(root, n: int, size: int, seed: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        a = np.zeros((size, size, 3), np.uint8)
        x, y = rng.randint(1, size // 2, 2)
        a[y : y + size // 3, x : x + size // 3] = rng.randint(60, 255, 3)
        Image.fromarray(a).save(root / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def data16(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("data16"), 8, 16)


def _cfg(data, outdir, arch="stylegan3-t", **kw):
    base = dict(data=str(data), outdir=str(outdir), preset=f"tiny-{arch}", aug="none", grid=2, snap=1)
    return TrainConfig(**{**base, **kw})


def _states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _magnitudes(G) -> torch.Tensor:
    return torch.stack([b.clone() for n, b in G.named_buffers() if n.endswith(".magnitude_ema")])


# ---------------------------------------------------------------------------------------------
# The recipe


def test_presets_are_nvidias_train_py():
    """Values of stylegan3 train.py (--cfg stylegan3-t/-r) and training_loop.py defaults."""
    for arch in ARCHS:
        p = PRESETS[arch]
        assert (p.architecture, p.channel_base, p.channel_max, p.mapping_layers, p.z_dim) == (arch, 32768, 512, 2, 512)
        assert (p.lr, p.d_lr, p.pl_weight, p.style_mixing_prob, p.mbstd_group) == (0.0025, 0.002, 0, 0, 4)
        assert (p.ema_rampup, p.conv_clamp, p.sg3_layers) == (0.05, 256, 14)
        for cpu in (f"{arch}-cpu32",):  # a CPU-sized variant of each, with the same recipe
            assert PRESETS[cpu].architecture == arch and PRESETS[cpu].pl_weight == 0
    t = TrainConfig(data="x", outdir="y", preset="stylegan3-t", batch=32)
    r = TrainConfig(data="x", outdir="y", preset="stylegan3-r", batch=16)
    assert t.ema_kimg == 10 and r.ema_kimg == 5  # batch * 10 / 32
    assert t.blur_fade_kimg == 0 and r.blur_fade_kimg == 100  # -r only: batch * 200 / 32
    assert PRESETS["stylegan3-r"].blur_sigma == 10 and PRESETS["stylegan3-t"].blur_sigma == 0
    # gamma: NVIDIA's configs.md recommendations (batch 32): 0.5 / 2 / 8 / 32 at 128 / 256 / 512 / 1024.
    assert [t.r1_gamma(r) for r in (128, 256, 512, 1024)] == [0.5, 2, 8, 32]
    assert t.replace(gamma=3.0).r1_gamma(256) == 3.0
    assert PRESETS["cpu32"].gamma == 0.1 and TrainConfig(data="x", outdir="y").r1_gamma(1024) == 0.1
    assert (t.learning_rate, t.d_learning_rate) == (0.0025, 0.002)
    assert t.replace(lr=0.01).d_learning_rate == 0.01 and t.replace(lr=0.01, dlr=0.003).d_learning_rate == 0.003


@pytest.mark.parametrize("arch, fixture", [("stylegan3-t", "sg3t_small.pkl"), ("stylegan3-r", "sg3r_small.pkl")])
def test_preset_builds_nvidias_networks(shared_dir, monkeypatch, arch, fixture):
    """train.py --cfg ARCH --cbase/--cmax/--batch 32 as the fixture's json says: our G layout
    (sizes, channels, kernels, radial filters, padding, magnitude EMA decay) and D config equal
    the ones NVIDIA's code built (-r: G's feature maps doubled, D's not)."""
    pkl = shared_dir / "compat" / fixture
    kw = json.loads(pkl.with_suffix(".json").read_text())
    d_kw = kw["D_init_kwargs"]
    monkeypatch.setitem(PRESETS, arch, dataclasses.replace(PRESETS[arch], z_dim=128))
    cfg = TrainConfig(data="x", outdir="y", preset=arch, batch=32, cbase=d_kw["channel_base"], cmax=d_kw["channel_max"])
    res = kw["G_init_kwargs"]["img_resolution"]
    ours = stylegan3_config(cfg, SimpleNamespace(resolution=res, channels=3, c_dim=0))
    theirs = load_network(pkl, "G").config
    assert (ours.channel_base, ours.channel_max) == (
        kw["G_init_kwargs"]["channel_base"],
        kw["G_init_kwargs"]["channel_max"],
    )
    assert ours.input == theirs.input and ours.num_ws == theirs.num_ws == 16
    keys = ("name", "in_channels", "out_channels", "in_size", "out_size", "conv_kernel", "up_taps", "down_taps")
    keys += ("down_radial", "padding", "conv_clamp")
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys], a.name
        assert a.magnitude_ema_beta == pytest.approx(kw["G_init_kwargs"]["magnitude_ema_beta"], rel=1e-15)
    D = load_network(pkl, "D").config
    assert (D.channel_base, D.channel_max, D.mbstd_group_size) == (
        d_kw["channel_base"],
        d_kw["channel_max"],
        d_kw["epilogue_kwargs"]["mbstd_group_size"],
    )


def test_blur_schedule_and_filter():
    """sigma = 10 * max(1 - nimg / (fade_kimg * 1000), 0); taps 2 ** -(x / sigma) ** 2 over
    |x| <= floor(3 sigma), normalised, zero padding (NVIDIA's run_D)."""
    r32 = loss_config(TrainConfig(data="x", outdir="y", preset="stylegan3-r", batch=32), 32, fine_tuning=False)
    assert (r32.blur_init_sigma, r32.blur_fade_kimg) == (10, 200)
    sigmas = [blur_sigma(r32, n) for n in (0, 50_000, 100_000, 150_000, 200_000, 10**7)]
    assert sigmas == [10, 7.5, 5, 2.5, 0, 0]
    r16 = loss_config(TrainConfig(data="x", outdir="y", preset="stylegan3-r", batch=16), 32, fine_tuning=False)
    assert blur_sigma(r16, 50_000) == 5
    t = loss_config(TrainConfig(data="x", outdir="y", preset="stylegan3-t"), 32, fine_tuning=False)
    tuned = loss_config(TrainConfig(data="x", outdir="y", preset="stylegan3-r"), 32, fine_tuning=True)
    assert blur_sigma(t, 0) == 0 and blur_sigma(tuned, 0) == 0  # fine-tuning: NVIDIA's --resume sets 0

    img = torch.randn([2, 3, 9, 11], dtype=torch.float64).float()
    for sigma in (1.0, 1.7):
        radius = math.floor(3 * sigma)
        taps = np.array([2.0 ** -((x / sigma) ** 2) for x in range(-radius, radius + 1)])
        taps /= taps.sum()
        want = img.double().numpy()
        for axis in (2, 3):
            want = ndimage.correlate1d(want, taps, axis=axis, mode="constant", cval=0.0)
        got = losses.blur(img, sigma)
        assert got.shape == img.shape
        np.testing.assert_allclose(got.double().numpy(), want, rtol=0, atol=2e-6)
    assert losses.blur(img, 0.3) is img  # floor(0.9) = 0 taps each side: no blur


# ---------------------------------------------------------------------------------------------
# Training steps


@pytest.mark.parametrize("arch", ARCHS)
def test_sg3_steps_train_without_pl_or_mixing(data16, tmp_path, monkeypatch, arch):
    """Two steps: G main, D main, D R1 (lazy) only; finite losses, weights and magnitude EMAs
    move, G_ema copies the EMAs; D sees blurred images (-r) at the scheduled sigma."""
    st = setup(_cfg(data16, tmp_path, arch), CPU)
    assert isinstance(st.G, Generator3) and st.G.config.architecture == arch
    assert st.loss.cfg.pl_weight == 0 and st.loss.cfg.style_mixing_prob == 0
    if arch == "stylegan3-r":  # 1x1 kernels, radial filters, G twice D's feature maps
        assert st.G.config.layers[0].conv_kernel == 1 and any(s.down_radial for s in st.G.config.layers)
        assert (st.G.config.channel_base, st.D.config.channel_base) == (512, 256)
    assert [p[:2] for p in _phases(st)] == [("G", "main"), ("D", "main"), ("D", "reg")]

    def no_pl(*a, **k):
        raise AssertionError("path-length regularisation ran")

    monkeypatch.setattr(StyleGAN2Loss, "g_reg", no_pl)
    mapping_calls, seen_sigmas = [], []
    forward = st.G.mapping.forward
    monkeypatch.setattr(st.G.mapping, "forward", lambda *a, **k: mapping_calls.append(1) or forward(*a, **k))
    real_blur = losses.blur
    monkeypatch.setattr(losses, "blur", lambda img, s: seen_sigmas.append(s) or real_blur(img, s))
    g0, d0, m0 = [p.clone() for p in st.G.parameters()], [p.clone() for p in st.D.parameters()], _magnitudes(st.G)
    stats = [train_step(st), train_step(st)]
    for s in stats:
        assert "pl_penalty" not in s and all(np.isfinite(v) for v in s.values()), s
    assert "r1_penalty" in stats[0] and "r1_penalty" not in stats[1]
    # One mapping call per generator pass (G main, D main; 2 steps): mixing would add a second.
    assert len(mapping_calls) == 4
    fade = 2 * 200 / 32 * 1000  # blur_fade_kimg * 1000 at batch 2
    want = [10.0] * 4 + [10 * (1 - 2 / fade)] * 3 if arch == "stylegan3-r" else [0.0] * 7
    assert seen_sigmas == pytest.approx(want)  # step 0: G main, D fake, D real, R1 real; step 1 no R1
    assert any(not torch.equal(a, b) for a, b in zip(g0, st.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, st.D.parameters()))
    m1 = _magnitudes(st.G)
    assert (m1 != m0).all() and torch.equal(_magnitudes(st.G_ema), m1)


@pytest.mark.parametrize("batch_gpu", [2, 1])
def test_magnitude_ema_update(data16, tmp_path, batch_gpu):
    """Each layer's magnitude_ema after a step = lerp(mean(x^2), old, beta) of its input x in the
    D phase's fake pass (NVIDIA's update_emas=True), beta = 0.5 ** (batch / 20000); in chunks,
    the average of the chunks' updates from the same old value."""
    st = setup(_cfg(data16, tmp_path, batch_gpu=batch_gpu), CPU)
    beta = 0.5 ** (2 / 20000)
    assert all(s.magnitude_ema_beta == pytest.approx(beta, rel=1e-15) for s in st.G.config.layers)
    names = st.G.synthesis.layer_names
    inputs = {n: [] for n in names}

    def hook(name):
        def capture(module, args, kwargs):
            if kwargs.get("update_emas"):
                inputs[name].append(args[0].detach().clone())

        return capture

    handles = [getattr(st.G.synthesis, n).register_forward_pre_hook(hook(n), with_kwargs=True) for n in names]
    old = _magnitudes(st.G).double()
    train_step(st)
    for h in handles:
        h.remove()
    chunks = 2 // batch_gpu
    want = []
    for i, n in enumerate(names):
        assert len(inputs[n]) == chunks
        updates = [beta * old[i] + (1 - beta) * x.double().square().mean() for x in inputs[n]]
        want.append(sum(updates) / chunks)
    torch.testing.assert_close(_magnitudes(st.G).double(), torch.stack(want), rtol=1e-6, atol=0)


def test_exact_resume_sg3(data16, tmp_path):
    """-r (blur, radial filters): 4 steps in one run == 2, then --resume auto for 2: identical
    G, G_ema (magnitude EMAs included), D and optimizer states. The snapshot is a Generator3."""
    a = train(_cfg(data16, tmp_path / "a", "stylegan3-r", kimg=0.008), CPU)
    train(_cfg(data16, tmp_path / "b", "stylegan3-r", kimg=0.004), CPU)
    b = train(_cfg(data16, tmp_path / "b", "stylegan3-r", kimg=0.008, resume="auto"), CPU)
    assert a.step == b.step == 4
    for name in ("G", "G_ema", "D"):
        assert _states_equal(getattr(a, name), getattr(b, name)), name
    for opt in ("G_opt", "D_opt"):
        sa, sb = getattr(a, opt).state_dict()["state"], getattr(b, opt).state_dict()["state"]
        assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    snap = sorted((tmp_path / "b").glob("network-snapshot-*.pkl"))[-1]
    G = load_network(snap)
    assert isinstance(G, Generator3) and G.config.architecture == "stylegan3-r"
    assert _states_equal(G, a.G_ema) and (tmp_path / "b" / "fakes-000000.008.png").is_file()
    assert load_snapshot(snap)["training"]["blur_init_sigma"] == 10
    assert "layers" in json.loads((tmp_path / "a" / "config.json").read_text())["G"]


def test_weights_only_resume_turns_blur_off_for_good(data16, tmp_path):
    """Fine-tuning from a weights-only file starts without blur; resuming that run keeps it off."""
    st = setup(_cfg(data16, tmp_path / "x", "stylegan3-r"), CPU)
    weights = tmp_path / "weights.pkl"
    save_network(weights, G_ema=st.G_ema)
    run = tmp_path / "run"
    first = train(_cfg(data16, run, "stylegan3-r", kimg=0.002, resume=str(weights)), CPU)
    assert first.loss.cfg.blur_init_sigma == 0 and first.loss.blur_sigma == 0
    again = setup(_cfg(data16, run, "stylegan3-r", kimg=0.004, resume="auto"), CPU)
    assert again.step == 1 and again.loss.cfg.blur_init_sigma == 0


# ---------------------------------------------------------------------------------------------
# NVIDIA's pickles


def test_fine_tune_from_nvidia_sg3_pickle(shared_dir, tmp_path, capsys):
    """--resume sg3t_small.pkl --cfg stylegan3-t: its G, G_ema and D (said so), its architecture,
    the run's magnitude EMA decay; a step trains and moves the EMAs."""
    pkl = shared_dir / "compat" / "sg3t_small.pkl"
    data = _images(tmp_path / "data", 2, 64)
    cfg = TrainConfig(data=str(data), outdir=str(tmp_path / "run"), preset="stylegan3-t", resume=str(pkl))
    st = setup(cfg.replace(batch=2, aug="none", grid=1, kimg=0.002), CPU)
    assert "resuming weights only" in capsys.readouterr().err
    for name in ("G", "G_ema", "D"):
        assert _states_equal(getattr(st, name), load_network(pkl, name)), name
    assert st.G.config.channel_base == 2048 and st.step == 0  # the pickle's, not the preset's 32768
    assert st.G.config.layers[0].magnitude_ema_beta == pytest.approx(0.5 ** (2 / 20000), rel=1e-15)
    assert st.loss.cfg.blur_init_sigma == 0
    m0, g0 = _magnitudes(st.G), [p.clone() for p in st.G.parameters()]
    stats = train_step(st)
    assert all(np.isfinite(v) for v in stats.values()), stats
    assert any(not torch.equal(a, b) for a, b in zip(g0, st.G.parameters()))
    assert (_magnitudes(st.G) != m0).all()


@pytest.mark.parametrize(
    "fixture, preset, message",
    [
        (
            "sg3t_small.pkl",
            "cpu32",
            "holds a stylegan3-t generator, --cfg cpu32 trains stylegan2; use --cfg stylegan3-t",
        ),
        ("sg3t_small.pkl", "stylegan3-r", "holds a stylegan3-t generator, --cfg stylegan3-r trains stylegan3-r"),
        ("official_small.pkl", "stylegan3-t", "holds a stylegan2 generator, --cfg stylegan3-t trains stylegan3-t"),
    ],
)
def test_resume_refuses_another_architecture(shared_dir, tmp_path, fixture, preset, message):
    cfg = TrainConfig(data=str(_images(tmp_path / "d", 2, 64)), outdir=str(tmp_path / "run"), preset=preset)
    with pytest.raises(InputError, match=message):
        setup(cfg.replace(resume=str(shared_dir / "compat" / fixture)), CPU)
    assert not (tmp_path / "run").exists()


def test_cli_resume_mismatch_is_one_line_exit_2(shared_dir, tmp_path):
    data = _images(tmp_path / "d", 2, 64)
    cmd = [sys.executable, "-m", "stylegen.cli.main", "train", "--data", str(data), "--outdir", str(tmp_path / "r")]
    cmd += ["--resume", str(shared_dir / "compat" / "sg3t_small.pkl"), "--cfg", "stylegan3-r", "--quiet"]
    env = dict(os.environ, STYLEGEN_OPS="ref")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "stylegan3-t generator" in errors[0] and "Traceback" not in r.stderr
