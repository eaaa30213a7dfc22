"""Training: every loss path, exact resume, crash safety, NaN guard, torchrun parity."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

from stylegen import load_network, load_snapshot
from stylegen.errors import InputError
from stylegen.training.config import PRESETS, Preset, TrainConfig
from stylegen.training.distributed import Dist
from stylegen.training.loop import TrainingDiverged, setup, train, train_step
from stylegen.training.losses import LossConfig, StyleGAN2Loss

from ops_helpers import plugin_or_skip

TINY = Preset(
    channel_base=256,
    channel_max=32,
    mapping_layers=2,
    z_dim=32,
    batch=8,
    gamma=1.0,
    lr=0.002,
    ema_kimg=0.5,
    ema_rampup=0.05,
    mbstd_group=4,
    pl_weight=2.0,
    style_mixing_prob=0.9,
    conv_clamp=None,
    description="tests: everything on, tiny",
)
CPU = Dist(0, 1, torch.device("cpu"))


@pytest.fixture(autouse=True)
def tiny_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", TINY)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """32 RGB 16x16 images of coloured squares on black."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.RandomState(0)
    for i in range(32):
        a = np.zeros((16, 16, 3), np.uint8)
        x, y = rng.randint(1, 10, 2)
        a[y : y + 5, x : x + 5] = rng.randint(60, 255, 3)
        Image.fromarray(a).save(root / f"{i:02d}.png")
    return root


def _cfg(data_dir, outdir, **kw):
    base = dict(data=str(data_dir), outdir=str(outdir), preset="tiny", batch=8, aug="none", grid=2, snap=1)
    base.update(kw)
    return TrainConfig(**base)


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_every_phase_runs_and_changes_weights(data_dir, tmp_path, monkeypatch, impl):
    """Step 0 runs G main, G path-length, D main, D R1; all losses finite, weights move."""
    monkeypatch.setenv("STYLEGEN_OPS", impl)
    if impl == "cpu":
        plugin_or_skip("cpu")
    st = setup(_cfg(data_dir, tmp_path, aug="fixed", aug_p=0.5), CPU)
    g0 = [p.clone() for p in st.G.parameters()]
    d0 = [p.clone() for p in st.D.parameters()]
    stats = train_step(st)
    for key in ("loss_G", "loss_D", "r1_penalty", "pl_penalty"):
        assert key in stats and np.isfinite(stats[key]), (key, stats)
    assert float(st.loss.pl_mean) > 0
    assert any(not torch.equal(a, b) for a, b in zip(g0, st.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, st.D.parameters()))
    assert not torch.equal(st.G.mapping.w_avg, torch.zeros_like(st.G.mapping.w_avg))
    stats = train_step(st)  # step 1: no lazy regularisers
    assert "r1_penalty" not in stats and "pl_penalty" not in stats


def _param_grads(module):
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])


def test_r1_and_pl_gradients_match_reference(data_dir, tmp_path, monkeypatch):
    """Second-order gradients through the CPU plugin equal those through the reference ops."""
    plugin_or_skip("cpu")
    st = setup(_cfg(data_dir, tmp_path), CPU)
    real = st.dataset.images[:4].float() / 127.5 - 1
    z = torch.randn([4, st.G.z_dim])
    grads = {}
    for impl in ("ref", "cpu"):
        monkeypatch.setenv("STYLEGEN_OPS", impl)
        loss = StyleGAN2Loss(st.G, st.D, LossConfig(r1_gamma=1.0, style_mixing_prob=0))
        st.D.requires_grad_(True).zero_grad()
        loss.d_reg(real, None, gain=1.0)
        st.G.requires_grad_(True).zero_grad()
        torch.manual_seed(0)
        loss.g_reg(z, None, gain=1.0)
        grads[impl] = (_param_grads(st.D), _param_grads(st.G))
    for a, b in zip(grads["ref"], grads["cpu"]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), float((a - b).abs().max())


def test_exact_resume(data_dir, tmp_path):
    """N kimg in one run == N/2, then --resume auto for the rest: identical weights."""
    a = train(_cfg(data_dir, tmp_path / "a", kimg=0.048), CPU)
    train(_cfg(data_dir, tmp_path / "b", kimg=0.024), CPU)
    b = train(_cfg(data_dir, tmp_path / "b", kimg=0.048, resume="auto"), CPU)
    assert a.step == b.step == 6
    for name in ("G", "G_ema", "D"):
        assert _states_equal(getattr(a, name), getattr(b, name)), name
    assert a.G_opt.state_dict()["state"][0]["exp_avg_sq"].equal(b.G_opt.state_dict()["state"][0]["exp_avg_sq"])


def test_run_directory_contents(data_dir, tmp_path):
    train(_cfg(data_dir, tmp_path, kimg=0.032, snap=0.008, keep=2), CPU)
    snaps = sorted(tmp_path.glob("network-snapshot-*.pkl"))
    assert [s.name for s in snaps] == ["network-snapshot-000000.024.pkl", "network-snapshot-000000.032.pkl"]
    lines = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [x["kimg"] for x in lines] == [0.008, 0.016, 0.024, 0.032]
    assert {"loss_G", "loss_D", "sec_per_kimg", "mem_rss_mb"} <= set(lines[0])
    assert (tmp_path / "fakes-000000.032.png").is_file() and (tmp_path / "fakes-init.png").is_file()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["train"]["preset"] == "tiny" and cfg["G"]["img_resolution"] == 16
    training = load_snapshot(snaps[-1])["training"]
    assert training["step"] == 4 and "G_opt" in training and "D_opt" in training
    G = load_network(snaps[-1])
    assert G(torch.randn([1, G.z_dim])).shape == (1, 3, 16, 16)


def test_nan_guard_keeps_last_good_snapshot(data_dir, tmp_path, monkeypatch):
    train(_cfg(data_dir, tmp_path, kimg=0.016, snap=0.016), CPU)
    good = tmp_path / "network-snapshot-000000.016.pkl"
    before = good.read_bytes()
    original = StyleGAN2Loss.g_main

    def poisoned(self, z, c, gain):
        stats = original(self, z, c, gain)
        stats["loss_G"] = stats["loss_G"] * float("nan")
        return stats

    monkeypatch.setattr(StyleGAN2Loss, "g_main", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss_G is nan .*last good snapshot: .*000000\.016\.pkl"):
        train(_cfg(data_dir, tmp_path, kimg=0.032, snap=0.008, resume="auto"), CPU)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.glob("network-snapshot-*")) == [good.name]


# Child processes run outside the source tree (`python -m` puts the cwd on sys.path, and the
# tree's stylegen/ is not the installed package).
RUN_DIR = tempfile.gettempdir()


def _cli(*args, **kw):
    env = dict(os.environ, STYLEGEN_OPS=os.environ.get("STYLEGEN_OPS", "ref"))
    return subprocess.run(
        [sys.executable, "-m", "stylegen.cli.main", *args], capture_output=True, text=True, env=env, cwd=RUN_DIR, **kw
    )


def test_kill_during_training_never_corrupts_snapshots(data_dir, tmp_path):
    """SIGKILL at several moments: every snapshot on disk loads, resume continues."""
    cmd = [
        sys.executable,
        "-m",
        "stylegen.cli.main",
        "train",
        "--data",
        str(data_dir),
        "--outdir",
        str(tmp_path),
        "--cfg",
        "cpu32",
        "--cbase",
        "256",
        "--cmax",
        "32",
        "--map-depth",
        "2",
        "--batch",
        "8",
        "--aug",
        "none",
        "--kimg",
        "1",
        "--snap",
        "0.008",
        "--keep",
        "0",
        "--quiet",
    ]
    env = dict(os.environ, STYLEGEN_OPS="ref")
    # A snapshot every minibatch, so the kills land in and around snapshot writes.
    for delay in (0.05, 0.3, 0.7):
        proc = subprocess.Popen(
            cmd + ["--resume", "auto"], env=env, cwd=RUN_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        before = len(list(tmp_path.glob("network-snapshot-*.pkl")))
        deadline = time.time() + 180
        while len(list(tmp_path.glob("network-snapshot-*.pkl"))) <= before and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    snaps = sorted(tmp_path.glob("network-snapshot-*.pkl"))
    assert snaps, "no snapshot was written before the kills"
    for s in snaps:
        assert load_snapshot(s)["training"]["step"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.name.startswith("network")]


@pytest.mark.parametrize(
    "setup_files, message",
    [
        ({}, "no images found"),
        ({"a.png": b"not a png"}, "1 unreadable image"),
        ({"a.png": (8, 8), "b.png": (16, 16)}, "are not 8x8"),
    ],
)
def test_dataset_errors_exit_2_one_line(tmp_path, setup_files, message):
    data = tmp_path / "data"
    data.mkdir()
    for name, content in setup_files.items():
        if isinstance(content, bytes):
            (data / name).write_bytes(content)
        else:
            Image.new("RGB", content).save(data / name)
    r = _cli("train", "--data", str(data), "--outdir", str(tmp_path / "run"), "--kimg", "0.01")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bad_labels_json_exit_2(tmp_path, data_dir):
    data = tmp_path / "d"
    data.mkdir()
    Image.new("RGB", (8, 8)).save(data / "a.png")
    (data / "dataset.json").write_text("{oops")
    r = _cli("train", "--data", str(data), "--outdir", str(tmp_path / "run"), "--cond", "--kimg", "0.01")
    assert r.returncode == 2 and "dataset.json" in r.stderr and "Traceback" not in r.stderr


def _assert_bitwise_equal(a, b, where: str) -> None:
    """Tensors equal with torch.equal, everything else with ==, recursing through dicts and lists."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (where, sorted(a), sorted(b))
        for k in a:
            _assert_bitwise_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_bitwise_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_torchrun_two_processes_equal_one(data_dir, tmp_path):
    """2 gloo processes == 1 process, bit for bit, for the same chunks (--batch-gpu 4).

    3 chunks over 2 processes: process 0 runs chunks 0 and 2, process 1 chunk 1 and pads the
    second round, so a reduction that summed each process's chunks first ((c0 + c2) + c1), or
    let the backend choose the order, would differ from one process's c0 + c1 + c2. ADA at a
    nonzero p makes the augmentation draws and the D(real) sign statistics part of the state.
    Both runs get the same ops implementation and thread count: a chunk's own arithmetic may
    depend on them (BLAS blocking), the order in which chunks are added must not.
    """
    common = ["--data", str(data_dir), "--cfg", "cpu32", "--cbase", "256", "--cmax", "32", "--map-depth", "2"]
    common += ["--batch", "12", "--batch-gpu", "4", "--kimg", "0.024", "--snap", "1", "--quiet", "--gamma", "1"]
    common += ["--aug", "ada", "--aug-p", "0.2"]
    env = dict(os.environ, STYLEGEN_OPS="ref", OMP_NUM_THREADS="1")
    main = [sys.executable, "-m", "stylegen.cli.main", "train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    runs = {"one": main, "two": torchrun + main[1:]}
    for name, cmd in runs.items():
        r = subprocess.run(
            [*cmd, "--outdir", str(tmp_path / name), *common],
            capture_output=True,
            text=True,
            env=env,
            cwd=RUN_DIR,
            timeout=600,
        )
        assert r.returncode == 0, (name, r.stderr[-2000:])
    a, b = (load_snapshot(next((tmp_path / name).glob("network-snapshot-*.pkl"))) for name in runs)
    assert a["training"]["step"] == 2
    for name in ("G", "G_ema", "D"):
        _assert_bitwise_equal(a[name]["state"], b[name]["state"], name)
    a["training"].pop("config"), b["training"].pop("config")  # differ in --outdir only
    _assert_bitwise_equal(a["training"], b["training"], "training")
    assert a["training"]["ada"]["count"] == 2 * 12  # the sign statistics did reach the state
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2


@pytest.mark.parametrize(
    "world, kw, message",
    [
        (1, dict(batch=8, batch_gpu=3), "--batch 8 is not a multiple of --batch-gpu 3"),
        (4, dict(batch=2), "--batch 2 in chunks of --batch-gpu 1 leaves some of the 4 processes without a chunk"),
    ],
)
def test_bad_batch_split_is_refused_at_setup(data_dir, tmp_path, world, kw, message):
    with pytest.raises(InputError, match=re.escape(message)):
        setup(_cfg(data_dir, tmp_path, **kw), Dist(0, world, torch.device("cpu")))
    assert not tmp_path.joinpath("config.json").exists()


def test_fine_tune_from_nvidia_pickle(compat_dir, tmp_path, capsys):
    """--resume with NVIDIA's pickle: G, G_ema and D weights (said so), frozen D layers stay put."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(8):
        Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"{i}.png")
    pkl = compat_dir / "official_small.pkl"
    cfg = _cfg(data, tmp_path / "run", resume=str(pkl), freeze_d=4, batch=4, kimg=0.004, gamma=1.0)
    st = setup(cfg, CPU)
    assert "resuming weights only" in capsys.readouterr().err
    D0 = load_network(pkl, "D").state_dict()
    assert _states_equal(st.G, load_network(pkl, "G")) and st.step == 0
    assert st.G.config.channel_base == 2048  # the pickle's architecture, not the preset's
    train_step(st)
    D1 = st.D.state_dict()
    assert torch.equal(D1["b32.fromrgb.weight"], D0["b32.fromrgb.weight"])  # frozen (layer 0)
    assert not torch.equal(D1["b16.conv0.weight"], D0["b16.conv0.weight"])  # trained


def test_ada_kimg_option_is_used_and_checked(data_dir, tmp_path):
    small = ["--cfg", "cpu32", "--cbase", "256", "--cmax", "32", "--map-depth", "2", "--batch", "8", "--quiet"]
    # 4 minibatches of 8 = one ADA adjustment, of 32 / (ada_kimg * 1000) = 0.32 from p = 0.5 up or
    # down (NVIDIA's default 500 kimg would move p by 6.4e-5).
    ada = ["--aug", "ada", "--aug-p", "0.5", "--ada-kimg", "0.1"]
    r = _cli("train", "--data", str(data_dir), "--outdir", str(tmp_path), *small, "--kimg", "0.032", *ada)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "config.json").read_text())["train"]["ada_kimg"] == 0.1
    last = json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and abs(abs(last["augment_p"] - 0.5) - 0.32) < 1e-6, last
    r = _cli("train", "--data", str(data_dir), "--outdir", str(tmp_path / "x"), "--ada-kimg", "0")
    assert r.returncode == 2 and "'--ada-kimg'" in r.stderr and "Traceback" not in r.stderr
