"""`stylegen metrics` on a StyleGAN3 network (the offline feature net: no download needed).

Checks that every metric family runs on NVIDIA's SG3 pickle and gives the same value through
the command line as through the library with the network sampled independently in the test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegen import load_network
from stylegen.cli.main import main
from stylegen.metrics import runner


def _images(folder, n, res):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, [res, res, 3], dtype=np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


@pytest.mark.parametrize("metric", ["fd_effnet_lite0", "ppl2_wend_effnet_lite0"])
def test_metrics_run_on_stylegan3(tmp_path, monkeypatch, compat_dir, metric):
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    path = compat_dir / "sg3t_small.pkl"
    data = _images(tmp_path / "data", 4, 64)
    args = ["metrics", "--network", path, "--data", data, "--metrics", metric, "--num", 4, "--batch", 2]
    r = CliRunner().invoke(main, [str(a) for a in (*args, "--device", "cpu")], prog_name="stylegen")
    assert r.exit_code == 0, r.output
    (line,) = [s for s in r.stdout.splitlines() if s.startswith("{")]
    rec = json.loads(line)
    value = rec["results"][metric]
    assert np.isfinite(value) and value > 0 and rec["num_gen"] == 4
    (lib,) = runner.run_metrics(load_network(path), data, [metric], runner.MetricOptions(num=4, batch=2))
    assert lib["results"][metric] == pytest.approx(value, rel=1e-4)


def test_fd_sees_the_stylegen3_images(tmp_path, monkeypatch, compat_dir):
    """The Frechet distance to a dataset of the network's own images is far smaller than to noise."""
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    G = load_network(compat_dir / "sg3t_small.pkl")
    own = tmp_path / "own"
    own.mkdir()
    with torch.no_grad():
        img = G(torch.randn([8, G.z_dim], generator=torch.Generator().manual_seed(5)))
    for i, a in enumerate((img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()):
        Image.fromarray(a).save(own / f"{i}.png")
    noise = _images(tmp_path / "noise", 8, 64)
    opts = runner.MetricOptions(num=8, batch=4)
    (near,) = runner.run_metrics(G, own, ["fd_effnet_lite0"], opts)
    (far,) = runner.run_metrics(G, noise, ["fd_effnet_lite0"], opts)
    assert near["results"]["fd_effnet_lite0"] < 0.5 * far["results"]["fd_effnet_lite0"]
