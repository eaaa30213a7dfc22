"""The StyleGAN3 input transform: SynthesisNetwork3.set_input_transform and `sample --translate/--rotate`.

Oracles: the fixtures' `transform` (NVIDIA's gen_images.py: inv(make_transform((0.3, -0.2), 20)))
and `images_transformed` (NVIDIA's G_ema with that buffer), and, for the directions, exact pixel
shifts of the Fourier features worked out by hand.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from cli_helpers import OFFICIAL, ok, png, usage_error

from stylegen import to_uint8
from stylegen.errors import InputError
from stylegen.networks.sg3_design import design_config3, init_generator3
from stylegen.networks.sg3_synthesis import image_transform

TRANSLATE, ROTATE = (0.3, -0.2), 20.0  # the fixtures' transform_params
ATOL = 1e-4  # FORMAT.md: images to 1e-4 max abs, uint8 within one level
FEATURE_ATOL = 1e-5  # sin of a differently rounded phase: |arg| <~ 2 pi * 4, float32


@pytest.fixture(autouse=True)
def _ref_ops(monkeypatch):
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


def test_matrix_is_gen_images(sg3):
    ref, meta = sg3["ref"], sg3["meta"]["transform"]
    assert (tuple(meta["translate"]), meta["rotate_degrees"]) == (TRANSLATE, ROTATE)
    inv = np.linalg.inv(image_transform(TRANSLATE, ROTATE))
    np.testing.assert_allclose(inv, ref["transform"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(inv, np.array(meta["buffer_value"]), rtol=0, atol=1e-15)
    a = np.deg2rad(ROTATE)  # make_transform by hand: [[cos, sin, tx], [-sin, cos, ty], [0, 0, 1]]
    hand = np.array([[np.cos(a), np.sin(a), 0.3], [-np.sin(a), np.cos(a), -0.2], [0, 0, 1]])
    np.testing.assert_allclose(image_transform(TRANSLATE, ROTATE), hand, rtol=0, atol=1e-15)


def test_transformed_images(sg3, sg3_net):
    """set_input_transform((0.3, -0.2), 20) stores NVIDIA's buffer and gives its images_transformed
    (one seed at psi 1, one at 0.7; test_sg3_networks covers every seed with the copied buffer)."""
    ref = sg3["ref"]
    G = sg3_net.freeze()
    G.synthesis.set_input_transform(translate=TRANSLATE, rotate=ROTATE)
    assert torch.equal(G.synthesis.input.transform, torch.from_numpy(ref["transform"]).float())
    z = torch.from_numpy(ref["z"])
    with torch.inference_mode():
        for p, seeds in ((0, [0]), (1, [4])):
            img = G(z[seeds], truncation_psi=float(ref["psis"][p]))
            want = torch.from_numpy(ref["images_transformed"][p][seeds])
            diff = (img - want).abs().max().item()
            assert diff <= ATOL, f"psi {ref['psis'][p]}: {diff:.3g}"
            assert (to_uint8(img).int() - to_uint8(want).int()).abs().max() <= 1
    G.synthesis.set_input_transform()  # the defaults restore the trained identity
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))
    with torch.inference_mode():
        assert (G(z[:1]) - torch.from_numpy(ref["images"][0][:1])).abs().max() <= ATOL


@pytest.fixture(scope="module")
def fresh():
    """A freshly initialised generator: its learned input transform is the identity (affine
    weight 0, bias (1, 0, 0, 0)), so the features move by the user's transform alone."""
    G = init_generator3(design_config3(img_resolution=16, z_dim=8, w_dim=8, channel_base=128, channel_max=8))
    return G.eval()


def _features(G, **transform):
    G.synthesis.set_input_transform(**transform)
    with torch.inference_mode():
        return G.synthesis.input(torch.randn([1, G.w_dim], generator=torch.Generator().manual_seed(0)))[0]


def test_directions_by_hand(fresh):
    """Pixels sit 1 / rate apart: translating by (1 / rate, 0) moves the features one pixel right,
    (0, 1 / rate) one pixel down; 90 degrees is np.rot90 (counter-clockwise as displayed: the
    grid is symmetric about the centre, so it maps onto itself)."""
    rate = fresh.config.input.sampling_rate
    base = _features(fresh)
    right = _features(fresh, translate=(1 / rate, 0))
    torch.testing.assert_close(right[:, :, 1:], base[:, :, :-1], rtol=0, atol=FEATURE_ATOL)
    down = _features(fresh, translate=(0, 2 / rate))
    torch.testing.assert_close(down[:, 2:, :], base[:, :-2, :], rtol=0, atol=FEATURE_ATOL)
    turned = _features(fresh, rotate=90)
    torch.testing.assert_close(turned, torch.rot90(base, k=1, dims=(1, 2)), rtol=0, atol=FEATURE_ATOL)
    # first rotate about the centre, then translate
    both = _features(fresh, translate=(1 / rate, 0), rotate=90)
    torch.testing.assert_close(both[:, :, 1:], turned[:, :, :-1], rtol=0, atol=FEATURE_ATOL)
    fresh.synthesis.set_input_transform()


@pytest.mark.parametrize(
    "translate, rotate",
    [((1.0,), 0.0), ((0.0, float("nan")), 0.0), ((0.0, 0.0), float("inf")), ("0,0", 0.0), ((0.0, 0.0), "20")],
)
def test_bad_transform_values(fresh, translate, rotate):
    with pytest.raises(InputError, match="translate"):
        fresh.synthesis.set_input_transform(translate, rotate)
    assert torch.equal(fresh.synthesis.input.transform, torch.eye(3))


# ---------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize("name, seeds", [("sg3t_small", [0, 3]), ("sg3r_small", [42])])
def test_cli_sample_transformed_pixels(compat_dir, tmp_path, name, seeds):
    """`stylegen sample --translate 0.3,-0.2 --rotate 20`: NVIDIA's uint8 within one level."""
    with np.load(compat_dir / f"{name}_ref.npz") as d:
        ref_seeds, images = [int(s) for s in d["seeds"]], d["images_transformed"][0]
    out = tmp_path / "out"
    ok("sample", "--network", compat_dir / f"{name}.pkl", "--seeds", ",".join(map(str, seeds)), "--translate", "0.3,-0.2",
       "--rotate", "20", "--outdir", out)  # fmt: skip
    want = to_uint8(torch.from_numpy(images)).numpy()
    assert sorted(p.name for p in out.glob("*.png")) == [f"seed{s:04d}.png" for s in seeds]
    for seed in seeds:
        diff = np.abs(png(out / f"seed{seed:04d}.png").astype(int) - want[ref_seeds.index(seed)].astype(int)).max()
        assert diff <= 1, f"seed {seed}: {diff} levels"


@pytest.mark.parametrize("option, value", [("--translate", "0.1,0"), ("--rotate", "5")])
def test_cli_stylegan2_refuses_a_transform(tmp_path, option, value):
    line = usage_error("sample", "--network", OFFICIAL, "--seeds", "0", option, value, "--outdir", tmp_path,
                       match=option)  # fmt: skip
    assert "StyleGAN3" in line
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "option, value", [("--translate", "1,2,3"), ("--translate", "a,b"), ("--translate", "1"),
                      ("--translate", "nan,0"), ("--rotate", "x"), ("--rotate", "inf")],
)  # fmt: skip
def test_cli_bad_transform_values(compat_dir, tmp_path, option, value):
    usage_error("sample", "--network", compat_dir / "sg3t_small.pkl", "--seeds", "0", option, value,
                "--outdir", tmp_path, match=option)  # fmt: skip
