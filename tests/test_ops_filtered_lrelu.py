"""filtered_lrelu: hand-computed cases, output sizes, NVIDIA's reference outputs, gradients, errors.

Oracles, strongest first: literal numbers worked out by hand below; the output-size formula of
../shared/compat/FORMAT.md ("The filtered_lrelu contract"), written out here; and
filtered_lrelu_small.npz, outputs and gradients of NVIDIA's own reference op (stylegen3's
`_filtered_lrelu_ref`) for 6 calls, with the exact arguments in its `meta` JSON. Then the compiled
plugins against those oracles: the CPU plugin against the reference over a parameter grid and on
NVIDIA's calls, the CUDA plugin against the CPU one (GPU machines only).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from stylegen.ops import filtered_lrelu
from stylegen.ops.filtered_lrelu import out_size

import ops_helpers
from ops_helpers import assert_close
from tolerances import GRADCHECK

one_thread = ops_helpers.one_thread
cpu_plugin = ops_helpers.cpu_plugin
pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64 = torch.float32, torch.float64
SQRT2 = math.sqrt(2)
IMPLS = pytest.mark.parametrize("impl", ["ref", "auto"])
# FORMAT.md: our op must give NVIDIA's reference "to 1e-5 of each tensor's largest magnitude".
NVIDIA_REL = 1e-5
NPZ = "filtered_lrelu_small.npz"


def img(rows, dtype=F64) -> torch.Tensor:
    """A literal 2-D list as a [1, 1, H, W] image."""
    return torch.tensor(rows, dtype=dtype)[None, None]


def randn(shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def hand(actual: torch.Tensor, expected, msg: str = "") -> None:
    assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), "filtered_lrelu", "hand", msg)


# ------------------------------------------------------------------------------------------------
# Hand-computed cases


@IMPLS
def test_1x1_bias_lrelu_gain(impl):
    # No filters, up = down = 1: y = lrelu(x + b) * gain, with the defaults gain sqrt 2, slope 0.2.
    x = torch.tensor([[[[-1.0]], [[2.0]]]], dtype=F64)  # [1, 2, 1, 1]
    b = torch.tensor([0.5, 0.5], dtype=F64)
    y = filtered_lrelu(x, b=b, impl=impl)
    hand(y, [[[[-0.1 * SQRT2]], [[2.5 * SQRT2]]]])


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_2x2_identity_filters(dtype):
    x = img([[1.0, -2.0], [-0.5, 3.0]], dtype)
    for f in [None, torch.tensor([1.0]), torch.tensor([[1.0]])]:
        y = filtered_lrelu(x, fu=f, fd=f, b=torch.tensor([-1.0], dtype=dtype), gain=1.0, slope=0.5)
        assert y.dtype == dtype
        hand(y, img([[0.0, -1.5], [-0.75, 2.0]]), f"filter {f}")


def test_1_1_filter_sums_the_2x2_footprint():
    # fu = [1, 1] is separable: a 2x2 box; valid positions only, so 3x3 -> 2x2.
    x = img([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    y = filtered_lrelu(x, fu=torch.tensor([1.0, 1.0]), gain=1.0, slope=1.0)
    hand(y, img([[12.0, 16.0], [24.0, 28.0]]))
    # As fd instead (after the activation), with a negative input: lrelu before the sum.
    y = filtered_lrelu(-x, fd=torch.tensor([1.0, 1.0]), gain=1.0, slope=0.5)
    hand(y, img([[-6.0, -8.0], [-12.0, -14.0]]))


def test_convolution_vs_correlation():
    # 2-D kernel k = outer([1, 2], [1, 2]) = [[1, 2], [2, 4]] on a 2x2 image: one valid output.
    x = img([[1.0, 2.0], [3.0, 4.0]])
    k = torch.tensor([1.0, 2.0])
    conv = 1 * 4 + 2 * 2 + 3 * 2 + 4 * 1  # the kernel flipped
    corr = 1 * 1 + 2 * 2 + 3 * 2 + 4 * 4
    hand(filtered_lrelu(x, fu=k, gain=1.0, slope=1.0), img([[conv]]))
    hand(filtered_lrelu(x, fu=k, gain=1.0, slope=1.0, flip_filter=True), img([[corr]]))
    hand(filtered_lrelu(x, fd=k, gain=1.0, slope=1.0, flip_filter=True), img([[corr]]))
    # A non-square 2-D filter [fh, fw] = [1, 2], along x only; flipped: 1 * x[1] + 10 * x[0].
    hand(filtered_lrelu(x, fu=torch.tensor([[1.0, 10.0]]), gain=1.0, slope=1.0), img([[12.0], [34.0]]))


def test_upsampling_inserts_zeros_after_each_pixel_with_gain_up_squared():
    # 1x1 -> 2x2: [[x, 0], [0, 0]] times up ** 2 = 4; the bias goes in before the zero insertion.
    x = img([[3.0]])
    hand(filtered_lrelu(x, up=2, gain=1.0, slope=1.0), img([[12.0, 0.0], [0.0, 0.0]]))
    hand(filtered_lrelu(x, b=torch.tensor([1.0], dtype=F64), up=2, gain=1.0), img([[16.0, 0.0], [0.0, 0.0]]))
    hand(filtered_lrelu(img([[1.0, -1.0]]), up=3, gain=1.0, slope=0.5), img([[9, 0, 0, -4.5, 0, 0]] + [[0.0] * 6] * 2))


def test_downsampling_keeps_every_down_th_pixel_from_the_first():
    x = img([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    hand(filtered_lrelu(x, down=2, gain=1.0, slope=1.0), img([[1.0, 3.0], [7.0, 9.0]]))
    # up 2, padding 1, a [1, 1] box as fu and as fd, down 2.
    y = filtered_lrelu(
        img([[1.0, 2.0]]),
        torch.tensor([1.0, 1.0]),
        torch.tensor([1.0, 1.0]),
        up=2,
        down=2,
        padding=1,
        gain=1.0,
        slope=1.0,
    )
    # upsampled and padded, 4x6: [0]*6, [0, 4, 0, 8, 0, 0], [0]*6, [0]*6; fu's box sums, 3x5:
    # [4, 4, 8, 8, 0] twice, then zeros; fd's, 2x4: [16, 24, 32, 16], [8, 12, 16, 8]; then [::2, ::2].
    hand(y, img([[16.0, 32.0]]))


def test_slope_1_is_linear():
    # slope 1, no clamp: the op is linear in x (no bias), including negative inputs.
    fu, fd = randn([5], seed=1).float(), randn([4, 3], seed=2).float()
    kw = dict(fu=fu, fd=fd, up=2, down=2, padding=[2, 1, 3, 0], gain=1.5, slope=1.0)
    x1, x2 = randn([2, 3, 6, 5], seed=3), randn([2, 3, 6, 5], seed=4)
    y = filtered_lrelu(2 * x1 - 3 * x2, **kw)
    assert_close(y, 2 * filtered_lrelu(x1, **kw) - 3 * filtered_lrelu(x2, **kw), "filtered_lrelu", "hand")
    hand(filtered_lrelu(img([[-2.0]]), gain=3.0, slope=1.0), img([[-6.0]]))


def test_clamp_applies_after_gain_and_before_fd():
    x = img([[5.0, -10.0], [0.1, -0.1]])
    hand(filtered_lrelu(x, gain=1.0, clamp=1.0), img([[1.0, -1.0], [0.1, -0.02]]))
    hand(filtered_lrelu(x, gain=20.0, clamp=1.0), img([[1.0, -1.0], [1.0, -0.4]]))
    # fd [[1, 1]] sums two clamped values: 1 + 1, not clamp(5 + 5).
    hand(filtered_lrelu(img([[5.0, 5.0]]), fd=torch.tensor([[1.0, 1.0]]), gain=1.0, clamp=1.0), img([[2.0]]))
    hand(filtered_lrelu(x, gain=1.0, clamp=0.0), torch.zeros_like(x))


def test_negative_padding_crops_and_positive_padding_adds_zeros():
    x = img([[1.0, 2.0, 3.0, 4.0]])
    hand(filtered_lrelu(x, padding=[-1, -1, 0, 0], gain=1.0, slope=1.0), img([[2.0, 3.0]]))
    # Padding is relative to the upsampled image: [[4, 0, 8, 0], [0, 0, 0, 0]] cropped by x0 = 1, y1 = 1.
    hand(filtered_lrelu(img([[1.0, 2.0]]), up=2, padding=[-1, 0, 0, -1], gain=1.0, slope=1.0), img([[0.0, 8.0, 0.0]]))
    # Padded zeros stay 0 with a bias (it goes in first), [px, py] pads x by px and y by py.
    y = filtered_lrelu(img([[1.0]]), b=torch.tensor([1.0], dtype=F64), padding=[1, 0], gain=1.0)
    hand(y, img([[0.0, 2.0, 0.0]]))


# ------------------------------------------------------------------------------------------------
# Output size: FORMAT.md's formula over a grid


def format_md_size(w: int, up: int, down: int, x0: int, x1: int, fu_w: int, fd_w: int) -> int:
    """FORMAT.md: out = (W * up + x0 + x1 - (fw_u - 1) - (fw_d - 1) + down - 1) // down."""
    return (w * up + x0 + x1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down


SIZE_GRID = itertools.product([3, 8], [1, 2, 4], [1, 2, 4], [(0, 0), (3, 2), (-2, 1), (9, 8)], [1, 2, 5], [1, 4, 12])


def test_output_size_matches_format_md():
    checked = refused = 0
    for w, up, down, (x0, x1), fu_w, fd_w in SIZE_GRID:
        xw = torch.zeros([1, 1, 5, w], dtype=F64)
        # 2-D filters, their heights unlike their widths, so mixing up the axes shows.
        fu, fd = torch.ones([2, fu_w]), torch.ones([3, fd_w])
        pad = [x0, x1, 1, 2]
        want_w = format_md_size(w, up, down, x0, x1, fu_w, fd_w)
        want_h = format_md_size(5, up, down, 1, 2, 2, 3)
        assert out_size(w, up, down, x0, x1, fu_w, fd_w) == want_w
        if want_w < 1:
            with pytest.raises(ValueError, match="output would be"):
                filtered_lrelu(xw, fu, fd, up=up, down=down, padding=pad)
            refused += 1
            continue
        y = filtered_lrelu(xw, fu, fd, up=up, down=down, padding=pad)
        assert y.shape == (1, 1, want_h, want_w), (w, up, down, pad, fu_w, fd_w)
        checked += 1
    assert checked > 100 and refused > 0


# ------------------------------------------------------------------------------------------------
# NVIDIA's reference outputs (filtered_lrelu_small.npz)


@pytest.fixture(scope="module")
def nvidia(compat_dir) -> tuple[dict, dict[str, np.ndarray]]:
    path = compat_dir / NPZ
    assert path.is_file(), f"NVIDIA fixture {NPZ} missing in {compat_dir}"
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays.pop("meta")))
    return {c["key"]: c for c in meta["configs"]}, arrays


def assert_rel(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    """|actual - expected| <= NVIDIA_REL * max |expected| everywhere, shapes and dtype equal."""
    e = torch.from_numpy(expected)
    assert actual.shape == e.shape and actual.dtype == e.dtype, (what, actual.shape, e.shape, actual.dtype)
    err, scale = (actual.detach() - e).abs().max().item(), e.abs().max().item()
    assert scale > 0 and err <= NVIDIA_REL * scale, f"{what}: max error {err:.3g} vs largest magnitude {scale:.3g}"


@pytest.mark.parametrize("impl", ["ref", "auto", "cpu"])
@pytest.mark.parametrize("key", [f"c{i:02d}" for i in range(6)])
def test_nvidia_reference_call(nvidia, key, impl, request):
    if impl == "cpu":
        request.getfixturevalue("cpu_plugin")
    configs, d = nvidia
    c = configs[key]

    def arr(name):
        return torch.from_numpy(d[f"{key}_{name}"])

    x = arr("x").requires_grad_(True)
    b = arr("b").requires_grad_(True) if c["has_b"] else None
    fu = arr("fu") if c["has_fu"] else None
    fd = arr("fd") if c["has_fd"] else None
    assert x.dtype == F64 and all(f is None or f.dtype == F32 for f in (fu, fd))
    y = filtered_lrelu(
        x,
        fu,
        fd,
        b,
        up=c["up"],
        down=c["down"],
        padding=c["padding"],
        gain=c["gain"],
        slope=c["slope"],
        clamp=c["clamp"],
        flip_filter=c["flip_filter"],
        impl=impl,
    )
    assert list(y.shape) == c["y_shape"]
    assert_rel(y, d[f"{key}_y"], f"{key} ({c['name']}) y")
    inputs = [x] if b is None else [x, b]
    grads = torch.autograd.grad((y * arr("r")).sum(), inputs)
    assert_rel(grads[0], d[f"{key}_dx"], f"{key} dx")
    if b is not None:
        assert_rel(grads[1], d[f"{key}_db"], f"{key} db")


def test_nvidia_fixture_covers_the_contract(nvidia):
    # The 6 calls between them exercise what the reference must get right (see the .json).
    configs, _ = nvidia
    cs = list(configs.values())
    assert any(c["flip_filter"] for c in cs) and any(c["clamped_fraction"] > 0 for c in cs)
    assert any(c["clamp"] is None for c in cs) and any(not c["has_b"] for c in cs)
    assert any(min(c["padding"]) < 0 for c in cs) and any(c["fd_shape"] and len(c["fd_shape"]) == 2 for c in cs)
    assert {c["up"] for c in cs} >= {1, 2, 4}


# ------------------------------------------------------------------------------------------------
# Gradients: gradcheck in float64; none for the filters

GRAD_CONFIGS = [
    dict(fu=torch.tensor([1.0, -2.0, 3.0]), fd=torch.tensor([0.5, 1.5]), up=2, down=2, padding=[2, 1, 1, 2]),
    dict(fu=torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 1.0]]), up=4, down=2, padding=-1, flip_filter=True),
    dict(fd=torch.tensor([[1.0, 2.0, 3.0]]), padding=[1, 0], gain=2.0, slope=0.1, clamp=1.0),
    dict(fu=torch.tensor([1.0, 1.0]), fd=torch.tensor([2.0, -1.0, 1.0]), up=1, down=4, padding=3, slope=1.0),
]


@pytest.mark.parametrize("config", range(len(GRAD_CONFIGS)))
def test_gradcheck(config):
    kw = GRAD_CONFIGS[config]
    x = randn([1, 2, 4, 3], seed=10 + config).requires_grad_(True)
    b = randn([2], seed=20 + config).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: filtered_lrelu(x, b=b, **kw), (x, b), **GRADCHECK)


def test_clamped_values_get_no_gradient():
    x = img([[5.0, 0.5, -0.5, -20.0]]).requires_grad_(True)
    y = filtered_lrelu(x, gain=1.0, slope=0.1, clamp=1.0)
    (dx,) = torch.autograd.grad(y.sum(), [x])
    hand(dx, img([[0.0, 1.0, 0.1, 0.0]]))


def test_filters_get_no_gradient():
    fu = torch.tensor([1.0, 2.0, 1.0], requires_grad=True)
    fd = torch.tensor([[1.0, -1.0]], requires_grad=True)
    x = randn([1, 1, 4, 4], seed=5)
    assert not filtered_lrelu(x, fu, fd, up=2).requires_grad
    x.requires_grad_(True)
    filtered_lrelu(x, fu, fd, up=2).sum().backward()
    assert x.grad is not None and fu.grad is None and fd.grad is None


# ------------------------------------------------------------------------------------------------
# Layouts and dtypes


def test_float32_channels_last_and_empty_batch():
    fu, fd = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8, torch.tensor([1.0, 2.0, 1.0]) / 4
    x, b = randn([2, 3, 5, 6], seed=6), randn([3], seed=7)
    kw = dict(up=2, down=2, padding=[2, 1, 0, 3], clamp=0.5)
    y64 = filtered_lrelu(x, fu, fd, b, **kw)
    y32 = filtered_lrelu(x.float(), fu, fd, b.float(), **kw)
    assert y32.dtype == F32
    assert_close(y32, y64.float(), "filtered_lrelu", "hand")
    y_cl = filtered_lrelu(x.contiguous(memory_format=torch.channels_last), fu, fd, b, **kw)
    assert_close(y_cl, y64, "filtered_lrelu", "hand")
    assert filtered_lrelu(x[:0], fu, fd, b, **kw).shape == (0, *y64.shape[1:])


# ------------------------------------------------------------------------------------------------
# bad arguments (impl selection: tests/test_ops_filtered_lrelu_plugins.py)


X = torch.zeros([1, 2, 4, 4], dtype=F64)
BAD = [
    (dict(x=torch.zeros([2, 4, 4])), "x must be a 4-D"),
    (dict(x=torch.zeros([1, 2, 4, 4], dtype=torch.int64)), "x must be a 4-D .* floating-point"),
    (dict(x=[[1.0]]), "x must be"),
    (dict(fu=torch.zeros([1, 2, 3])), "fu must be"),
    (dict(fd=torch.zeros([0])), "fd must be"),
    (dict(fu=torch.tensor([1, 2])), "fu must be"),
    (dict(fd=[1.0, 2.0]), "fd must be"),
    (dict(b=torch.zeros([3], dtype=F64)), "b must be a 1-D tensor of x.shape\\[1\\] = 2"),
    (dict(b=torch.zeros([1, 2], dtype=F64)), "b must be a 1-D"),
    (dict(b=torch.zeros([2], dtype=F32)), "b must have x's dtype"),
    (dict(up=0), "up must be an int >= 1"),
    (dict(up=2.0), "up must be an int"),
    (dict(down=True), "down must be an int"),
    (dict(down=(2, 2)), "down must be an int"),
    (dict(padding=[1, 2, 3]), "padding must be"),
    (dict(padding=1.5), "padding must be"),
    (dict(padding=[1, 2.5]), "padding must be"),
    (dict(gain=0.0), "gain must be a finite number > 0"),
    (dict(gain=-1.0), "gain must be"),
    (dict(gain=float("inf")), "gain must be"),
    (dict(slope=-0.2), "slope must be a finite number >= 0"),
    (dict(slope=float("nan")), "slope must be"),
    (dict(clamp=-1.0), "clamp must be a number >= 0"),
    (dict(clamp="256"), "clamp must be"),
    (dict(flip_filter="yes"), "flip_filter must be a bool"),
    (dict(padding=-3), "output would be -2x-2 for input 4x4"),
    (
        dict(fu=torch.ones([5]), up=1),
        "output would be 0x0 for input 4x4, up=1, down=1, padding=\\[0, 0, 0, 0\\], fu 5x5",
    ),
    (dict(impl="fast"), "impl='fast' is not one of"),
]


@pytest.mark.parametrize("kwargs, match", BAD, ids=[f"{i}-{next(iter(k))}" for i, (k, _) in enumerate(BAD)])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    kwargs = dict(kwargs)
    x = kwargs.pop("x", X)
    with pytest.raises(ValueError, match=match):
        filtered_lrelu(x, **kwargs)


def test_accepts_numpy_integers_and_inf_clamp():
    # SG3 pickles store sizes and rates as numpy values; an infinite clamp is no clamp.
    x = randn([1, 1, 3, 3], seed=9)
    want = filtered_lrelu(x, torch.tensor([1.0, 1.0]), up=2, padding=[1, 0, 1, 0])
    got = filtered_lrelu(
        x,
        torch.tensor([1.0, 1.0]),
        up=np.int64(2),
        padding=[np.int64(1), 0, 1, np.int32(0)],
        gain=np.float64(SQRT2),
        clamp=float("inf"),
    )
    assert torch.equal(got, want)
