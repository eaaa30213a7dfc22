"""Pretrained weights absent from the torch hub cache are downloaded there; offline, one line, fast.

No test reaches the internet: the weight URLs are pointed at a file:// path, an HTTP server on
127.0.0.1 serving small generated state dicts, a closed loopback port, or a loopback port that
never answers, and any other connection fails the test (tests/weights_helpers.py).
"""

from __future__ import annotations

import hashlib
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
from weights_helpers import closed_port, forbid_internet, point_weights_at, serve, silent_server

import stylegen
from stylegen.cli.main import main
from stylegen.metrics import features, perceptual, weights
from stylegen.metrics.weights import MissingWeightsError, find_weights, hub_checkpoint_path

VGG_NAME = "vgg16-397923af.pth"


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """Loopback only, an empty torch hub cache, no weight variables, reference ops."""
    forbid_internet(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for var in ("STYLEGEN_VGG16", "STYLEGEN_INCEPTION", "STYLEGEN_EFFNET_LITE0"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path):
    """A folder with a small state dict under VGG16's file name."""
    root = tmp_path / "served"
    root.mkdir()
    torch.save({"features.0.weight": torch.arange(6.0)}, root / VGG_NAME)
    return root


def checkpoint_files() -> list[str]:
    d = hub_checkpoint_path(VGG_NAME).parent
    return sorted(os.listdir(d)) if d.is_dir() else []


def test_absent_weights_are_downloaded_once_into_the_hub_cache(monkeypatch, served, capsys):
    with serve(served) as (url, requests):
        point_weights_at(monkeypatch, url, vgg16=sha256(served / VGG_NAME)[:8])
        got = find_weights(perceptual.VGG16)
        assert got == hub_checkpoint_path(VGG_NAME)
        assert got.read_bytes() == (served / VGG_NAME).read_bytes()
        assert find_weights(perceptual.VGG16) == got  # from the cache now
    assert [r for r in requests if r.startswith("GET")] == [f"GET /{VGG_NAME}"]
    assert f"Downloading {perceptual.VGG16.what}" in capsys.readouterr().err
    assert checkpoint_files() == [VGG_NAME]  # no partial file left behind


def test_a_given_path_wins_over_the_download(monkeypatch, served, tmp_path):
    mine = tmp_path / "mine.pth"
    mine.write_bytes((served / VGG_NAME).read_bytes())
    with serve(served) as (url, requests):
        point_weights_at(monkeypatch, url)
        assert find_weights(perceptual.VGG16, mine) == mine
        monkeypatch.setenv("STYLEGEN_VGG16", str(mine))
        assert find_weights(perceptual.VGG16) == mine
    assert requests == [] and checkpoint_files() == []


def test_a_download_with_the_wrong_hash_is_refused_and_removed(monkeypatch, served):
    with serve(served) as (url, _):
        point_weights_at(monkeypatch, url, vgg16="00000000")
        with pytest.raises(MissingWeightsError, match=r"failed \(sha256 check: .*expected \"00000000\"") as e:
            find_weights(perceptual.VGG16)
    assert "\n" not in str(e.value)
    assert checkpoint_files() == []


def test_a_missing_file_on_the_server_is_one_line(monkeypatch, tmp_path):
    with serve(tmp_path) as (url, _):
        point_weights_at(monkeypatch, url)
        with pytest.raises(MissingWeightsError, match="HTTP Error 404") as e:
            find_weights(perceptual.VGG16)
    assert "\n" not in str(e.value) and checkpoint_files() == []


def test_offline_fails_at_once_with_the_full_message(monkeypatch):
    point_weights_at(monkeypatch, f"http://127.0.0.1:{closed_port()}/models")
    t = time.monotonic()
    with pytest.raises(MissingWeightsError) as e:
        find_weights(perceptual.VGG16, alternative="or use --distance offline")
    assert time.monotonic() - t < weights.CONNECT_TIMEOUT_S  # refused: no waiting for a timeout
    msg = str(e.value)
    assert "\n" not in msg and "Connection refused" in msg and msg.endswith("or use --distance offline")
    for part in (VGG_NAME, str(hub_checkpoint_path(VGG_NAME)), "--vgg PATH", "$STYLEGEN_VGG16", perceptual.VGG16.url):
        assert part in msg


def test_a_server_that_never_answers_times_out(monkeypatch):
    monkeypatch.setattr(weights, "CONNECT_TIMEOUT_S", 0.5)
    with silent_server() as url:
        point_weights_at(monkeypatch, url)
        t = time.monotonic()
        with pytest.raises(MissingWeightsError, match="timed out|no answer within 0.5 s"):
            find_weights(features.INCEPTION)
        assert time.monotonic() - t < 10  # bounded by the timeout (0.5 s + 1 s for the probe thread)


# ---------------------------------------------------------------------------------------------
# The real loaders and commands, with random networks of the right architectures


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random VGG16 conv trunk as `features.*`, legacy torch format (as the real file)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg.make_layers(vgg.cfgs["D"]).state_dict().items()}
    path = tmp_path_factory.mktemp("vgg") / VGG_NAME
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def test_inception_is_downloaded_over_http(monkeypatch, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = tvi.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(net.state_dict(), tmp_path / features.INCEPTION.filename)
    with serve(tmp_path) as (url, _):
        point_weights_at(monkeypatch, url, inception=sha256(tmp_path / features.INCEPTION.filename)[:8])
        loaded = features.load_feature_net("inception")
    assert isinstance(loaded, features.InceptionFeatures) and loaded.comparable is False  # random weights
    assert hub_checkpoint_path(features.INCEPTION.filename).is_file()


def test_project_downloads_vgg16_then_runs(monkeypatch, make_generator, vgg_file, tmp_path):
    """`stylegen project --target IMG` with nothing but the installed package, online (file:// here)."""
    point_weights_at(monkeypatch, vgg_file.parent.as_uri(), vgg16=sha256(vgg_file)[:8])
    G = make_generator(0)
    stylegen.save_network(tmp_path / "G.pkl", G=G, G_ema=G)
    target = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, [16, 16, 3], dtype=np.uint8)).save(target)
    args = ["project", "--network", tmp_path / "G.pkl", "--target", target, "--steps", 2, "--outdir", tmp_path / "o"]
    r = CliRunner().invoke(main, [str(a) for a in [*args, "--device", "cpu"]], prog_name="stylegen")
    assert r.exit_code == 0, (r.output, r.exception)
    assert "Distance: lpips-vgg16" in r.output and (tmp_path / "o" / "ws.npz").is_file()
    assert hub_checkpoint_path(VGG_NAME).read_bytes() == vgg_file.read_bytes()
