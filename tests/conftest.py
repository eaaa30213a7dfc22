"""Shared fixtures: the shared contract folder (NVIDIA fixture) and tiny generator configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from stylegen import Generator, GeneratorConfig

# CI (.ci/run) sets STYLEGEN_NO_SKIPS=1: the only skip it accepts is "needs a CUDA GPU"; any
# other skip (a missing fixture folder, font or build) fails the run, and missing NVIDIA
# fixtures fail their tests outright instead of skipping them.
ALLOWED_SKIP = "needs a CUDA GPU"


def no_skips() -> bool:
    return os.environ.get("STYLEGEN_NO_SKIPS", "0") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    if no_skips():
        pytest.fail(f"{reason} (STYLEGEN_NO_SKIPS is set: CI must have it)", pytrace=False)
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not no_skips():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    bad = [r for r in skipped if ALLOWED_SKIP not in str(r.longrepr)]
    if bad:
        for r in bad[:20]:
            reporter.write_line(
                f"FORBIDDEN SKIP {r.nodeid}: {r.longrepr[-1] if isinstance(r.longrepr, tuple) else r.longrepr}"
            )
        reporter.write_line(f"{len(bad)} test(s) skipped for a reason other than '{ALLOWED_SKIP}': failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def shared_root() -> Path:
    """$STYLEGEN_SHARED, else `../shared` next to the repository root."""
    env = os.environ.get("STYLEGEN_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if not root.is_dir():
        skip_or_fail(f"shared contract folder {root} is absent (set STYLEGEN_SHARED to its path)")
    return root


@pytest.fixture(scope="session")
def compat_dir(shared_dir: Path) -> Path:
    d = shared_dir / "compat"
    needed = ["official_small.pkl", "official_small_ref.npz"]
    missing = [n for n in needed if not (d / n).is_file()]
    if missing:
        skip_or_fail(f"NVIDIA fixture missing in {d}: {', '.join(missing)}")
    return d


@pytest.fixture(params=["ref", "cpu"])
def ops_impl(request, monkeypatch):
    """Run the whole network with one ops implementation (STYLEGEN_OPS); the cpu plugin must build
    under STYLEGEN_REQUIRE_EXT (CI)."""
    from stylegen.cuda_ops import PluginUnavailable, load_plugin
    from stylegen.ops._dispatch import require_ext

    if request.param == "cpu":
        try:
            load_plugin("cpu")
        except PluginUnavailable as e:
            if require_ext():
                pytest.fail(f"STYLEGEN_REQUIRE_EXT is set but the cpu plugin is unavailable: {e}")
            skip_or_fail(f"cpu plugin unavailable: {e}")
    monkeypatch.setenv("STYLEGEN_OPS", request.param)
    return request.param


def tiny_config(**overrides) -> GeneratorConfig:
    """A generator small enough for many forward passes per second."""
    kw = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 16, "img_channels": 3, "mapping_layers": 2}
    kw.update(channel_base=64, channel_max=8)
    kw.update(overrides)
    return GeneratorConfig(**kw)


def tiny_generator(seed: int = 0, **overrides) -> Generator:
    """tiny_config Generator with non-zero noise strengths and biases (so every path shows)."""
    torch.manual_seed(seed)
    G = Generator(tiny_config(**overrides)).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength") or (name.endswith(".bias") and "affine" not in name):
                p.copy_(torch.randn_like(p) * 0.3)
    return G


@pytest.fixture
def make_generator():
    """Factory fixture: make_generator(seed=0, **config_overrides) -> tiny eval-mode Generator."""
    return tiny_generator


@pytest.fixture
def make_config():
    """Factory fixture: make_config(**overrides) -> tiny GeneratorConfig."""
    return tiny_config


SG3_NETS = ["sg3t_small", "sg3r_small"]


@pytest.fixture(scope="module", params=SG3_NETS)
def sg3(request, compat_dir):
    """One StyleGAN3 fixture (T, then R): its path, reference outputs (_ref.npz) and facts (.json)."""
    import json

    import numpy as np

    name = request.param
    with np.load(compat_dir / f"{name}_ref.npz") as d:
        ref = {k: d[k] for k in d.files}
    meta = json.loads((compat_dir / f"{name}.json").read_text())
    return {"name": name, "path": compat_dir / f"{name}.pkl", "ref": ref, "meta": meta}


@pytest.fixture(scope="module")
def sg3_net(sg3):
    """The fixture network, loaded once per module (tests copy or freeze it before changing it)."""
    from stylegen import load_network

    return load_network(sg3["path"])
