"""Loading pretrained feature networks offline: VGG16 (LPIPS, precision/recall) and Inception-v3.

Real weights are not available here, so the loaders are tested with RANDOMLY INITIALISED networks
of the same architectures saved in the expected formats; every test runs offline: the weight URLs
point at a closed port on 127.0.0.1 and any other connection fails the test (downloads:
tests/test_weights_download.py).
"""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.models import inception as tvi
from torchvision.models import vgg
from weights_helpers import go_offline

import stylegen
from stylegen.cli.main import main
from stylegen.metrics import features, perceptual, ppl
from stylegen.metrics.weights import MissingWeightsError, find_weights


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Offline, an empty torch hub cache, no weight variables, reference ops, a private cache."""
    go_offline(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for var in ("STYLEGEN_VGG16", "STYLEGEN_INCEPTION", "STYLEGEN_EFFNET_LITE0"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random torchvision VGG16 conv trunk saved as `features.*` (the classifier left out), in
    the legacy (pre-zip) torch format of the real vgg16-397923af.pth."""
    torch.manual_seed(0)
    trunk = vgg.make_layers(vgg.cfgs["D"])
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """torchvision inception_v3(weights=None, aux_logits=True, init_weights=False) state dict."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = tvi.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("inception") / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return path


def hub_checkpoints() -> str:
    d = os.path.join(torch.hub.get_dir(), "checkpoints")
    os.makedirs(d, exist_ok=True)
    return d


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="stylegen")


def images(n: int, size: int = 16, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).randint(0, 256, [n, channels, size, size]).astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Finding weight files


def test_find_weights_order_path_env_hub(tmp_path, monkeypatch, vgg_file):
    spec = perceptual.VGG16
    with pytest.raises(MissingWeightsError) as e:
        find_weights(spec, alternative="or use --distance offline")
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("vgg16-397923af.pth", hub_checkpoints(), "--vgg", "$STYLEGEN_VGG16", perceptual.VGG16.url):
        assert part in msg
    assert "Connection refused" in msg
    assert msg.endswith("or use --distance offline")
    hub = os.path.join(hub_checkpoints(), "vgg16-397923af.pth")
    os.symlink(vgg_file, hub)
    assert str(find_weights(spec)) == hub
    other = tmp_path / "env.pth"
    other.write_bytes(vgg_file.read_bytes())
    monkeypatch.setenv("STYLEGEN_VGG16", str(other))
    assert find_weights(spec) == other  # the variable beats the cache
    assert find_weights(spec, vgg_file) == vgg_file  # the option beats both
    monkeypatch.setenv("STYLEGEN_VGG16", str(tmp_path / "typo.pth"))
    with pytest.raises(MissingWeightsError, match=r"\$STYLEGEN_VGG16 names .*typo.pth, which is not a file"):
        find_weights(spec)  # a named file that is missing is an error, not a fall-through


# ---------------------------------------------------------------------------------------------
# LPIPS (VGG16)


def test_lpips_distance_equals_the_lpips_package(vgg_file):
    import lpips

    ours = perceptual.load_distance("lpips", vgg=vgg_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(vgg_file, weights_only=True)
    ref.net.load_state_dict(
        {
            f"slice{s}.{k.split('.', 1)[1]}": v
            for k, v in state.items()
            for s, (lo, hi) in enumerate(perceptual.VGG16_SLICES, start=1)
            if lo <= int(k.split(".")[1]) < hi
        }
    )
    x0, x1 = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    expected = ref(x0, x1).flatten()
    torch.testing.assert_close(ours(x0, x1), expected, rtol=1e-4, atol=1e-6)
    assert torch.all(ours(x0, x0) == 0)
    gray = x0[:, :1]
    torch.testing.assert_close(ours(gray, x1), ours(gray.expand(-1, 3, -1, -1), x1))


def test_lpips_found_through_hub_cache_and_env(monkeypatch, vgg_file, tmp_path):
    os.symlink(vgg_file, os.path.join(hub_checkpoints(), "vgg16-397923af.pth"))
    assert isinstance(perceptual.load_distance("lpips"), perceptual.LPIPSDistance)
    os.unlink(os.path.join(hub_checkpoints(), "vgg16-397923af.pth"))
    monkeypatch.setenv("STYLEGEN_VGG16", str(vgg_file))
    assert isinstance(perceptual.load_distance("lpips"), perceptual.LPIPSDistance)


def test_vgg_loader_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, bad)
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        perceptual.load_distance("lpips", vgg=bad)
    code = tmp_path / "code.pth"
    torch.save({"x": MissingWeightsError("not a tensor")}, code)
    with pytest.raises(ValueError, match="not a plain state dict"):
        perceptual.load_distance("lpips", vgg=code)


def test_precision_recall_net_needs_the_classifier(vgg_file):
    with pytest.raises(ValueError, match="no VGG16 classifier.*needs the full file"):
        features.load_feature_net("vgg16", vgg=vgg_file)


def test_ppl_with_lpips(vgg_file, make_generator):
    dist = perceptual.load_distance("lpips", vgg=vgg_file)
    lengths = ppl.path_lengths(make_generator(0), dist, num_samples=3, batch_size=2)
    assert np.all(np.isfinite(lengths)) and np.all(lengths >= 0)
    G = make_generator(0)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("affine.weight"):
                p.zero_()
    assert np.all(ppl.path_lengths(G, dist, num_samples=2) == 0)


# ---------------------------------------------------------------------------------------------
# Inception-v3


def test_inception_from_hub_cache_gives_pool3_features(inception_file):
    os.symlink(inception_file, os.path.join(hub_checkpoints(), "pt_inception-2015-12-05-6726825d.pth"))
    net = features.load_feature_net("inception")
    assert net.dim == 2048 and net.identity.startswith("inception:")
    assert net.comparable is False and "not the known 2015-12-05 file" in net.note  # random weights
    feats = net(images(2))
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    torch.testing.assert_close(net(images(1, channels=1)), net(images(1, channels=1).expand(-1, 3, -1, -1)))


def test_inception_fid_pooling_differs_from_torchvision(inception_file):
    state = {k: v for k, v in torch.load(inception_file, weights_only=True).items() if not k.startswith("AuxLogits")}
    ours = features.load_inception(inception_file).net
    plain = tvi.Inception3(aux_logits=False, init_weights=False)
    plain.load_state_dict(state)
    x = torch.randn(1, 2048, 8, 8)
    assert not torch.allclose(ours.Mixed_7c(x), plain.eval().Mixed_7c(x))  # max pool, as the TF graph


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_inception_env_and_torchscript(monkeypatch, tmp_path, inception_file):
    monkeypatch.setenv("STYLEGEN_INCEPTION", str(inception_file))
    assert isinstance(features.load_feature_net("inception"), features.InceptionFeatures)

    class Fake(torch.nn.Module):  # NVIDIA's calling convention: uint8 images, return_features
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return x.float().mean(dim=[2, 3]).repeat(1, 683)[:, :2048]

    ts = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(Fake()).save(str(ts))
    net = features.load_feature_net("inception", feature_net=str(ts))  # explicit path: accepted
    assert isinstance(net, features.TorchScriptInception) and net(images(2)).shape == (2, 2048)
    monkeypatch.setenv("STYLEGEN_INCEPTION", str(ts))  # not explicit: refused
    with pytest.raises(ValueError, match="TorchScript.*--feature-net"):
        features.load_feature_net("inception")


# ---------------------------------------------------------------------------------------------
# The command line without weights: one line, exit 2, fast, no download


@pytest.fixture
def network_and_data(tmp_path, make_generator):
    G = make_generator(0)
    path = tmp_path / "G.pkl"
    stylegen.save_network(path, G=G, G_ema=G)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(images(1, seed=i)[0].permute(1, 2, 0).numpy()).save(data / f"{i}.png")
    return path, data


@pytest.mark.parametrize(
    "metric, needle",
    [
        ("fid50k_full", "pt_inception-2015-12-05-6726825d.pth"),
        ("kid50k_full", "$STYLEGEN_INCEPTION"),
        ("pr50k3_full", "vgg16-397923af.pth"),
        ("ppl2_wend", "--vgg PATH"),
    ],
)
def test_metrics_cli_missing_weights(network_and_data, metric, needle):
    G, data = network_and_data
    t = time.time()
    r = run("metrics", "--network", G, "--data", data, "--metrics", metric, "--device", "cpu")
    assert time.time() - t < 5
    assert r.exit_code == 2, r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith("Error: ") and needle in line and "downloading it from http://127.0.0.1:" in line
    assert os.path.join(torch.hub.get_dir(), "checkpoints") in line


def test_project_cli_missing_weights(network_and_data, tmp_path):
    G, data = network_and_data
    r = run("project", "--network", G, "--target", data / "0.png", "--outdir", tmp_path / "o", "--device", "cpu")
    assert r.exit_code == 2, r.output
    (line,) = r.output.strip().splitlines()
    assert "vgg16-397923af.pth" in line and "without a network, use --distance offline" in line
    assert not (tmp_path / "o").exists()


def test_metrics_cli_fid_kid_with_random_inception(network_and_data, inception_file, tmp_path):
    G, data = network_and_data
    r = run(
        "metrics", "--network", G, "--data", data, "--metrics", "fid50k_full,kid50k_full",
        "--feature-net", inception_file, "--num", 3, "--batch", 3, "--device", "cpu",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    recs = [json.loads(s) for s in r.stdout.splitlines() if s.startswith("{")]
    assert [rec["metric"] for rec in recs] == ["fid50k_full", "kid50k_full"]
    assert all(rec["num_gen"] == 3 and rec["num_real"] == 3 and rec["comparable"] is False for rec in recs)
    assert np.isfinite(recs[0]["results"]["fid50k_full"]) and np.isfinite(recs[1]["results"]["kid50k_full"])


def test_project_cli_with_lpips(network_and_data, vgg_file, tmp_path):
    G, data = network_and_data
    out = tmp_path / "p"
    args = ["project", "--network", G, "--target", data / "1.png", "--steps", 4, "--outdir", out, "--device", "cpu"]
    r = run(*args, "--vgg", vgg_file)
    assert r.exit_code == 0, r.output
    assert "Distance: lpips-vgg16" in r.output and (out / "ws.npz").is_file()
