"""Shared pieces of the CLI tests: tiny network files, CliRunner wrappers, image helpers.

Import into a test module by name (pytest puts tests/ on sys.path); conftest.py is shared by the
whole suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegen
from stylegen import Generator, GeneratorConfig
from stylegen.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
OFFICIAL = SHARED / "compat" / "official_small.pkl"
OFFICIAL_REF = SHARED / "compat" / "official_small_ref.npz"


@pytest.fixture(autouse=True)
def _ref_ops(monkeypatch):
    # Keep these tests independent of (and fast without) a native plugin build.
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


def tiny(seed: int = 0, **kw) -> Generator:
    cfg = {
        "z_dim": 16,
        "w_dim": 16,
        "c_dim": 0,
        "img_resolution": 16,
        "img_channels": 3,
        "mapping_layers": 2,
        "channel_base": 256,
        "channel_max": 32,
    }
    cfg.update(kw)
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**cfg)).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero noise strengths and w_avg, so noise and truncation matter
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
        G.mapping.w_avg.normal_()
    return G


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Paths of tiny snapshots: 'a', 'b' (same architecture), 'wide' (other channels), 'cond', 'gray'."""
    root = tmp_path_factory.mktemp("nets")
    paths = {}
    for name, seed, kw in [
        ("a", 0, {}),
        ("b", 1, {}),
        ("wide", 2, {"channel_max": 16}),
        ("cond", 3, {"c_dim": 4}),
        ("gray", 4, {"img_channels": 1}),
    ]:
        paths[name] = root / f"{name}.pkl"
        G = tiny(seed, **kw)
        stylegen.save_network(
            paths[name],
            G=G,
            G_ema=G,
            training={"kimg": 12.5, "tick": 3} if name == "a" else None,
        )
    return paths


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="stylegen")


def ok(*args: object):
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def usage_error(*args: object, match: str = ""):
    """Exit code 2, one `Error:` line, no traceback."""
    result = run(*args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert match in lines[0], lines[0]
    return lines[0]


def png(path: Path) -> np.ndarray:
    im = np.asarray(Image.open(path))
    return im[:, :, None] if im.ndim == 2 else im


def library_images(G, seeds, **kw) -> np.ndarray:
    z = torch.cat([stylegen.seed_to_z(s, G.z_dim) for s in seeds])
    with torch.inference_mode():
        return stylegen.to_uint8(G(z, **kw)).numpy()
