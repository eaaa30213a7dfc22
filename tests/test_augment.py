"""ADA augmentation: exact identities, exact pixel blits, analytic oracles for the resampler and
the color matrices, firing probabilities, gradients, 1/3 channels. (The adaptive p controller: test_ada.py.)"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylegen.ops import upsample2d
from stylegen.training import augment, resample
from stylegen.training.augment import (
    AUGMENT_PRESETS,
    BLIT,
    COLOR,
    GEOM,
    AugmentConfig,
    AugmentPipe,
    sample_geometry,
)
from stylegen.training.resample import lowpass_filter

from tolerances import GRADCHECK

TRANSFORMS = BLIT + GEOM + COLOR


@pytest.fixture(autouse=True)
def _one_thread():
    """Every tensor here is tiny: intra-op threads only add sync cost (and spin on a busy host)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_pipe(config, p):
    """Reference ops only: the tests never wait for a plugin build."""
    return AugmentPipe(config, p=p, impl="ref")


def only(name: str) -> AugmentConfig:
    return AugmentConfig(**{name: 1.0})


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(n, c=3, h=16, w=16, seed=0, dtype=torch.float32):
    """Natural-ish images: bicubic-upsampled 4x4 noise, roughly in [-1, 1]."""
    coarse = torch.randn([n, c, 4, 4], generator=gen(seed), dtype=torch.float64) * 0.5
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).to(dtype)


def pixel_coords(h, w):
    """Centred pixel coordinates (x, y) of an HxW image, float64 [H, W] each (the module's frame)."""
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
    return xs.double(), ys.double()


# --- Configuration and filter ------------------------------------------------------------------


def test_presets_and_config_validation():
    bgc = AUGMENT_PRESETS["bgc"]
    assert all(getattr(bgc, t) == 1 for t in TRANSFORMS)
    assert (bgc.xint_max, bgc.scale_std, bgc.rotate_max, bgc.aniso_std, bgc.xfrac_std) == (0.125, 0.2, 1, 0.2, 0.125)
    assert (bgc.brightness_std, bgc.contrast_std, bgc.hue_max, bgc.saturation_std) == (0.2, 0.5, 1, 1)
    for name, groups in {"b": BLIT, "c": COLOR, "bg": BLIT + GEOM}.items():
        assert [t for t in TRANSFORMS if getattr(AUGMENT_PRESETS[name], t)] == list(groups)
    with pytest.raises(ValueError, match="AugmentConfig.scale_std"):
        AugmentConfig(scale_std=-1)
    with pytest.raises(AttributeError):
        bgc.xflip = 0  # frozen


def test_lowpass_filter_response_and_polynomial_reproduction():
    f = lowpass_filter(12, torch.float64)
    assert f.shape == (12,) and torch.equal(f, f.flip(0))
    assert abs(float(f.sum()) - 1) < 1e-12
    assert abs(float(f[0::2].sum() - f[1::2].sum())) < 1e-12  # no DC ripple between the 2 phases
    w = torch.linspace(0, 0.5, 1001, dtype=torch.float64)
    resp = (f * torch.cos(2 * math.pi * w[:, None] * (torch.arange(12) - 5.5))).sum(1).abs()
    db = 20 * torch.log10(resp + 1e-300)
    assert db[w <= 0.15].min() > -0.5 and db[w >= 0.35].max() < -35 and db[w >= 0.4].max() < -45
    # Upsampling a ramp is exact (pixel 2k+1 lands at k + 1/4), a parabola is off by a constant.
    k = torch.arange(24, dtype=torch.float64)
    pos = torch.arange(48, dtype=torch.float64) / 2 - 0.25
    for order in (1, 2):
        up = upsample2d((k**order).repeat(24, 1)[None, None], f, impl="ref")[0, 0, 24, 12:36]
        err = up - pos[12:36] ** order
        assert err.std() < 1e-9 and (order == 2 or err.abs().max() < 1e-9)


# --- Exact identities and pixel blits ------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_p0_is_exact_identity(c):
    x = smooth_images(8, c=c)
    assert make_pipe(AUGMENT_PRESETS["bgc"], 0.0)(x, gen(0)) is x


def test_nothing_fired_skips_resampling(monkeypatch):
    def fail(*args):
        raise AssertionError("resampled although no geometric transform fired")

    monkeypatch.setattr(resample, "_resample", fail)
    monkeypatch.setattr(resample, "_blit", fail)
    x = smooth_images(8)
    assert torch.equal(make_pipe(AUGMENT_PRESETS["bgc"], 1e-9)(x, gen(0)), x)
    out = make_pipe(AUGMENT_PRESETS["c"], 1.0)(x, gen(0))  # color only: changed, never resampled
    assert not torch.equal(out, x)


def test_xflip_only_gives_the_image_or_its_mirror():
    x = smooth_images(64, seed=1)
    out = make_pipe(only("xflip"), 1.0)(x, gen(1))
    flipped = [torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(a != b for a, b in zip(flipped, same))  # exactly one of the two, bit for bit
    assert 16 <= sum(flipped) <= 48  # i ~ U{0, 1}: about half of the firings flip


def test_rotate90_only_gives_one_of_the_four_rotations():
    x = smooth_images(64, seed=2)
    out = make_pipe(only("rotate90"), 1.0)(x, gen(2))
    ks = []
    for o, xi in zip(out, x):
        match = [k for k in range(4) if torch.equal(o, torch.rot90(xi, k, dims=(1, 2)))]
        assert len(match) == 1
        ks += match
    assert set(ks) == {0, 1, 2, 3}


def test_xint_only_is_a_pixel_shift_with_symmetric_borders():
    x = smooth_images(32, h=16, w=16, seed=3)
    out = make_pipe(only("xint"), 1.0)(x, gen(3))
    padded = np.pad(x.numpy(), [(0, 0), (0, 0), (4, 4), (4, 4)], mode="symmetric")
    shifts = []
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(out[i].numpy(), padded[i, :, 4 - dy : 20 - dy, 4 - dx : 20 - dx])
        ]
        assert len(found) == 1, f"image {i}: not a shift by at most 0.125 * 16 = 2 pixels"
        shifts += found
    assert len(set(shifts)) > 5


def test_blit_only_for_pixel_permutations():
    def mat(a, b, c, d, tx=0.0, ty=0.0):
        return torch.tensor([[[a, b, tx], [c, d, ty], [0, 0, 1]]], dtype=torch.float64)

    rot90, flip = mat(0, -1, 1, 0), mat(-1, 0, 0, 1, tx=2)
    assert resample._blit_mask(rot90, 16, 16) and resample._blit_mask(flip, 15, 16)
    assert not resample._blit_mask(rot90, 15, 16)  # odd x even: pixel centres miss each other
    assert not resample._blit_mask(mat(1, 0, 0, 1, tx=0.5), 16, 16)
    assert not resample._blit_mask(mat(1, 1, 0, 1), 16, 16)  # a shear is not a permutation


# --- The general resampler against analytic images -----------------------------------------------


def test_general_resampler_matches_exact_blits():
    x = smooth_images(16, h=16, w=16, seed=4)
    g = sample_geometry(AUGMENT_PRESETS["b"], 1.0, 16, 16, 16, gen(4))
    assert bool(resample._blit_mask(g, 16, 16).all())
    blit = resample._blit(x, g)
    general = resample._resample(x, g, lowpass_filter(), "ref")
    assert (general - blit).abs().max() < 0.02  # only the low-pass filters' blur differs


def test_general_resampler_samples_where_the_matrix_points():
    # A smooth analytic image through rotation + anisotropic scaling + a fractional shift:
    # out(p) = img(G_inv p) wherever G_inv p stays inside the image.
    h, w = 24, 36
    xs, ys = pixel_coords(h, w)

    def img(x, y):
        return torch.exp(-(x**2 / 60 + (y - 2) ** 2 / 30)) + 0.3 * torch.cos(0.35 * x - 0.2 * y)

    a, s, t = 0.5, 1.15, (1.3, -0.7)
    lin = torch.tensor([[math.cos(a) * s, -math.sin(a) / s], [math.sin(a) * s, math.cos(a) / s]], dtype=torch.float64)
    g = torch.eye(3, dtype=torch.float64)
    g[:2, :2], g[:2, 2] = lin, torch.tensor(t, dtype=torch.float64)
    x_in, y_in = g[0, 0] * xs + g[0, 1] * ys + g[0, 2], g[1, 0] * xs + g[1, 1] * ys + g[1, 2]
    inside = (x_in.abs() < w / 2 - 3) & (y_in.abs() < h / 2 - 3)
    out = resample._resample(img(xs, ys)[None, None].float(), g[None], lowpass_filter(), "ref")[0, 0]
    assert inside.sum() > 250
    assert (out.double() - img(x_in, y_in))[inside].abs().max() < 0.03


def test_geometry_parameter_distributions():
    # Matrix level, many draws: each transform's inverse has the paper's form and spread.
    n, h, w = 4000, 16, 32

    def draw(name):
        g = sample_geometry(only(name), 1.0, n, h, w, gen(14))
        assert (g[:, 2] == torch.tensor([0, 0, 1.0], dtype=torch.float64)).all()
        return g[:, :2, :2], g[:, :2, 2]

    lin, t = draw("scale")  # isotropic: diag(1 / s), log2 s ~ N(0, 0.2^2)
    assert (lin[:, 0, 1] == 0).all() and torch.equal(lin[:, 0, 0], lin[:, 1, 1])
    assert abs(float(lin[:, 0, 0].log2().std()) - 0.2) < 0.01 and (t == 0).all()
    lin, _ = draw("aniso")  # diag(1 / s, s)
    assert torch.allclose(lin[:, 0, 0] * lin[:, 1, 1], torch.ones(n, dtype=torch.float64))
    assert abs(float(lin[:, 0, 0].log2().std()) - 0.2) < 0.01
    lin, _ = draw("rotate")  # pre- and post-rotation: orthogonal, det 1, any angle
    assert torch.allclose(lin @ lin.transpose(1, 2), torch.eye(2, dtype=torch.float64).expand(n, 2, 2))
    angle = torch.atan2(lin[:, 1, 0], lin[:, 0, 0])
    assert torch.allclose(torch.linalg.det(lin), torch.ones(n, dtype=torch.float64))
    assert abs(float(angle.abs().mean()) - math.pi / 2) < 0.1  # uniform on the circle
    _, t = draw("xfrac")  # N(0, 0.125^2) of the image size, per axis
    assert abs(float(t[:, 0].std()) - 0.125 * w) < 0.2 and abs(float(t[:, 1].std()) - 0.125 * h) < 0.1
    _, t = draw("xint")  # whole pixels within +-0.125 of the size
    assert torch.equal(t, t.round()) and set(t[:, 0].abs().tolist()) == {0, 1, 2, 3, 4}
    assert set(t[:, 1].abs().tolist()) == {0, 1, 2}


def test_color_matrices_keep_the_homogeneous_row():
    c = augment.sample_color(AUGMENT_PRESETS["bgc"], 1.0, 256, gen(15))
    assert (c[:, 3] == torch.tensor([0, 0, 0, 1.0], dtype=torch.float64)).all()


def test_constant_image_stays_constant_under_any_transform():
    g = sample_geometry(AUGMENT_PRESETS["bg"], 1.0, 16, 12, 20, gen(5))
    out = resample.apply_geometry(torch.full([16, 2, 12, 20], 0.7), g, lowpass_filter(), "ref")
    assert (out - 0.7).abs().max() < 1e-5  # borders reflect: no dark fringes, unit DC gain


# --- Color ------------------------------------------------------------------------------------


def _luma_chroma(x):
    luma = x.mean(1, keepdim=True)
    return luma, x - luma


def _per_image_factor(y, x):
    """Least-squares s per image with y ~= s * x, and the worst residual."""
    y, x = y.flatten(1), x.flatten(1)
    s = (y * x).sum(1) / (x * x).sum(1)
    return s, float((y - s[:, None] * x).abs().max())


@pytest.mark.parametrize("name", COLOR)
def test_color_transform_exact_structure_and_statistics(name):
    x = smooth_images(256, h=8, w=8, seed=6)
    out = make_pipe(only(name), 1.0)(x, gen(6))
    assert torch.isfinite(out).all()
    assert abs(float(out.mean() - x.mean())) < 0.05 and 0.5 < float(out.std() / x.std()) < 2
    (l0, c0), (l1, c1) = _luma_chroma(x), _luma_chroma(out)
    if name == "brightness":  # one offset per image, ~N(0, 0.2^2)
        d = (out - x).flatten(1)
        assert (d - d[:, :1]).abs().max() < 1e-5 and 0.15 < float(d[:, 0].std()) < 0.25
    elif name == "contrast":  # one factor per image, 2^N(0, 0.5^2)
        s, residual = _per_image_factor(out, x)
        assert residual < 1e-5 and 0.4 < float(s.log2().std()) < 0.6
    elif name == "lumaflip":  # luma negated or kept, chroma kept
        flipped = (l1 + l0).flatten(1).abs().amax(1) < 1e-5
        kept = (l1 - l0).flatten(1).abs().amax(1) < 1e-5
        assert torch.allclose(c1, c0, atol=1e-5) and (flipped ^ kept).all()
        assert 0.3 < float(flipped.float().mean()) < 0.7
    else:  # hue rotates the chroma about the luma axis, saturation scales it; luma is kept
        assert torch.allclose(l1, l0, atol=1e-5)
        if name == "hue":
            assert torch.allclose(c1.norm(dim=1), c0.norm(dim=1), atol=1e-5)
        else:
            s, residual = _per_image_factor(c1, c0)
            assert residual < 1e-4 and 0.8 < float(s.log2().std()) < 1.2


def test_one_channel_equals_gray_three_channel():
    # A gray RGB image stays gray under every transform, and its channels equal the 1-channel result.
    x1 = smooth_images(12, c=1, seed=7)
    out1 = make_pipe(AUGMENT_PRESETS["bgc"], 0.8)(x1, gen(7))
    out3 = make_pipe(AUGMENT_PRESETS["bgc"], 0.8)(x1.repeat(1, 3, 1, 1), gen(7))
    assert out1.shape == x1.shape and not torch.equal(out1, x1)
    torch.testing.assert_close(out3, out1.expand_as(out3), rtol=1e-5, atol=1e-5)


# --- Probabilities ----------------------------------------------------------------------------


# Fraction of firings that change an image: xflip / lumaflip draw i ~ U{0, 1}, rotate90 k ~ U{0..3};
# an integer shift of an 8-pixel image is round(U(-1, 1)) per axis, zero on both with chance 1/4.
CHANGES = {"xflip": 0.5, "lumaflip": 0.5, "rotate90": 0.75, "xint": 0.75}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_fires_with_probability_p(name):
    n, p = 600, 0.4
    x = torch.rand([n, 3, 8, 8], generator=gen(8)) * 2 - 1
    out = make_pipe(only(name), p)(x, gen(8))
    changed = (out != x).flatten(1).any(1).float().mean()
    assert abs(float(changed) - p * CHANGES.get(name, 1.0)) < 0.06  # 3 sigma at n = 600


# --- Gradients, dtypes, shapes, reproducibility ---------------------------------------------------


def test_gradients_flow_to_the_images():
    x = smooth_images(8, seed=9).requires_grad_(True)
    wgt = torch.randn([8, 3, 16, 16], generator=gen(9))
    (grad,) = torch.autograd.grad((make_pipe(AUGMENT_PRESETS["bgc"], 0.9)(x, gen(9)) * wgt).sum(), x)
    assert torch.isfinite(grad).all() and (grad != 0).flatten(1).any(1).all()
    assert not torch.equal(grad, wgt)  # the adjoint of the transforms, not a pass-through


def test_gradcheck_and_gradgradcheck_float64():
    # The randomness is fixed by reseeding, so fn is a fixed linear map of x. p = 1: every
    # image goes through the general resampler and the color matrix.
    pipe = make_pipe(AUGMENT_PRESETS["bgc"], 1.0).double()

    def fn(x):
        return pipe(x, gen(10))

    tiny = smooth_images(1, h=4, w=4, seed=10, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (tiny,), **GRADCHECK)
    gray = smooth_images(2, c=1, h=8, w=8, seed=10, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (gray,), **GRADCHECK)
    # R1 on augmented reals differentiates the input gradient once more.
    assert torch.autograd.gradgradcheck(fn, (tiny,), fast_mode=True, **GRADCHECK)


def test_generator_makes_runs_reproducible():
    x = smooth_images(8, seed=11)
    pipe = make_pipe(AUGMENT_PRESETS["bgc"], 0.7)
    assert torch.equal(pipe(x, gen(1)), pipe(x, gen(1)))
    assert not torch.equal(pipe(x, gen(1)), pipe(x, gen(2)))
    torch.manual_seed(3)
    a = pipe(x)
    torch.manual_seed(3)
    assert torch.equal(a, pipe(x))  # generator=None: torch's global generator


def test_non_square_other_channels_and_bad_inputs():
    x = smooth_images(6, c=3, h=12, w=20, seed=12)
    out = make_pipe(AUGMENT_PRESETS["bgc"], 1.0)(x, gen(12))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert make_pipe(AUGMENT_PRESETS["bg"], 1.0)(smooth_images(4, c=2), gen(0)).shape == (4, 2, 16, 16)
    with pytest.raises(ValueError, match=r"1 or 3 channels.*\(4, 2, 16, 16\)"):
        make_pipe(AUGMENT_PRESETS["bgc"], 0.5)(smooth_images(4, c=2))
    with pytest.raises(ValueError, match="p must be in"):
        make_pipe(AUGMENT_PRESETS["bgc"], 1.5)(x)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        make_pipe(AUGMENT_PRESETS["bgc"], 0.5)(x[0])


def test_p_is_a_settable_persistent_buffer():
    pipe = make_pipe(AUGMENT_PRESETS["bgc"], 0.0)
    pipe.p.fill_(0.25)
    assert list(pipe.state_dict()) == ["p"]
    other = make_pipe(AUGMENT_PRESETS["bgc"], 0.0)
    other.load_state_dict(pipe.state_dict())
    assert float(other.p) == 0.25 and "p=0.2500" in repr(other)
