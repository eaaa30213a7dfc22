"""upfirdn2d: hand-computed cases, reference vs CPU plugin, output sizes (derivatives: test_ops_upfirdn2d_grad.py).

Oracles from strongest to weakest: literal numbers worked out by hand below, the `_ref` path
(plain PyTorch), the CPU plugin, the CUDA plugin (GPU machines only).
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from stylegen.ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from stylegen.ops._dispatch import OpsWarning
from stylegen.ops.upfirdn2d import out_size

import ops_helpers
from ops_helpers import assert_close, grads, needs_cuda, plugin_or_skip

# Fixtures, bound by name so pytest finds them here (conftest.py is the suite's, not the ops').
cpu_plugin = ops_helpers.cpu_plugin
impl = ops_helpers.impl
one_thread = ops_helpers.one_thread

pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64 = torch.float32, torch.float64
DTYPES = pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])


def img(rows, dtype=F64) -> torch.Tensor:
    """A literal 2-D list as a [1, 1, H, W] image."""
    return torch.tensor(rows, dtype=dtype)[None, None]


def randn(shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pad4(p):
    if isinstance(p, int):
        return (p, p, p, p)
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else tuple(p)


# ------------------------------------------------------------------------------------------------
# Hand-computed cases (run for the reference and the CPU plugin)


@DTYPES
def test_identity_filter_returns_x(impl, dtype):
    x = randn([2, 3, 4, 5], seed=1, dtype=dtype)
    for f in [None, torch.tensor([1.0]), torch.tensor([[1.0]]), setup_filter([1])]:
        assert_close(upfirdn2d(x, f, impl=impl), x, "upfirdn2d", "hand", f"f={f}")


@DTYPES
def test_zero_insertion(impl, dtype):
    # up=2, f=[1], gain 1: each sample lands on an even position, zeros between and after it.
    x = img([[1, 2], [3, 4]], dtype)
    expected = [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    for f in [None, torch.tensor([1.0])]:
        assert_close(upfirdn2d(x, f, up=2, impl=impl), img(expected, dtype), "upfirdn2d", "hand")
    # Per axis: up=(x, y).
    assert_close(
        upfirdn2d(img([[1, 2, 3]], dtype), None, up=(2, 1), impl=impl), img([[1, 0, 2, 0, 3, 0]]), "upfirdn2d", "hand"
    )
    y = upfirdn2d(img([[5], [6]], dtype), None, up=(1, 3), impl=impl)
    assert_close(y, img([[5], [0], [0], [6], [0], [0]]), "upfirdn2d", "hand")


@DTYPES
def test_box_filter_sums(impl, dtype):
    x = img([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype)
    box2d, box1d = torch.ones([2, 2]), torch.ones([2])  # unnormalized: each output is a 2x2 sum
    for f in [box2d, box1d]:
        assert_close(upfirdn2d(x, f, impl=impl), img([[12, 16], [24, 28]]), "upfirdn2d", "hand")
        # Zero padding 1 on every side: the 2x2 windows hang over the border.
        expected = [[1, 3, 5, 3], [5, 12, 16, 9], [11, 24, 28, 15], [7, 15, 17, 9]]
        assert_close(upfirdn2d(x, f, padding=1, impl=impl), img(expected), "upfirdn2d", "hand")


@DTYPES
def test_gain_scales(impl, dtype):
    x = img([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype)
    # A 2-D filter takes the gain once; a separable one takes gain**0.5 per pass.
    assert_close(upfirdn2d(x, torch.ones([2, 2]), gain=3, impl=impl), img([[36, 48], [72, 84]]), "upfirdn2d", "hand")
    assert_close(upfirdn2d(x, torch.ones([2]), gain=4, impl=impl), img([[48, 64], [96, 112]]), "upfirdn2d", "hand")
    assert_close(
        upfirdn2d(x, None, gain=-2, impl=impl),
        img([[-2, -4, -6], [-8, -10, -12], [-14, -16, -18]]),
        "upfirdn2d",
        "hand",
    )


@DTYPES
def test_negative_padding_crops(impl, dtype):
    x = img([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19]], dtype)
    # padding = (x0, x1, y0, y1): drop 1 column left, 2 right, 1 row on top.
    y = upfirdn2d(x, None, padding=(-1, -2, -1, 0), impl=impl)
    assert_close(y, img([[6, 7], [11, 12], [16, 17]]), "upfirdn2d", "hand")
    # Mixed: one zero column on the left, 3 columns cropped on the right, 2 rows at the bottom.
    y = upfirdn2d(x, None, padding=(1, -3, 0, -2), impl=impl)
    assert_close(y, img([[0, 0, 1], [0, 5, 6]]), "upfirdn2d", "hand")
    # (x, y) form: crop one on each side of both axes.
    y = upfirdn2d(x, None, padding=(-1, -1), impl=impl)
    assert_close(y, img([[6, 7, 8], [11, 12, 13]]), "upfirdn2d", "hand")


@DTYPES
def test_downsample_keeps_every_nth(impl, dtype):
    x = img([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]], dtype)
    assert_close(upfirdn2d(x, None, down=2, impl=impl), img([[0, 2], [8, 10]]), "upfirdn2d", "hand")
    assert_close(
        upfirdn2d(x, None, down=(2, 1), impl=impl), img([[0, 2], [4, 6], [8, 10], [12, 14]]), "upfirdn2d", "hand"
    )
    assert_close(upfirdn2d(x, None, down=(1, 4), impl=impl), img([[0, 1, 2, 3]]), "upfirdn2d", "hand")
    assert_close(upfirdn2d(x, None, down=3, impl=impl), img([[0, 3], [12, 15]]), "upfirdn2d", "hand")


@DTYPES
def test_flip_filter_asymmetric(impl, dtype):
    # x = [1, 10, 100] padded to [0, 1, 10, 100, 0], f = [1, 2].
    # Convolution (default) weights the window [a, b] as 2a + b; flip_filter (correlation): a + 2b.
    x = img([[1, 10, 100]], dtype)
    f = torch.tensor([[1.0, 2.0]])
    assert_close(upfirdn2d(x, f, padding=(1, 1, 0, 0), impl=impl), img([[1, 12, 120, 200]]), "upfirdn2d", "hand")
    y = upfirdn2d(x, f, padding=(1, 1, 0, 0), flip_filter=True, impl=impl)
    assert_close(y, img([[2, 21, 210, 100]]), "upfirdn2d", "hand")
    # The same along y with a [2, 1] filter.
    xt, ft = img([[1], [10], [100]], dtype), torch.tensor([[1.0], [2.0]])
    assert_close(
        upfirdn2d(xt, ft, padding=(0, 0, 1, 1), impl=impl), img([[1], [12], [120], [200]]), "upfirdn2d", "hand"
    )
    y = upfirdn2d(xt, ft, padding=(0, 0, 1, 1), flip_filter=True, impl=impl)
    assert_close(y, img([[2], [21], [210], [100]]), "upfirdn2d", "hand")


@DTYPES
def test_convenience_wrappers(impl, dtype):
    x = img([[1, 2], [3, 4]], dtype)
    # [1, 1] normalized is [.5, .5] per axis; upsample2d's gain up**2 makes it nearest-neighbour.
    expected = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert_close(upsample2d(x, setup_filter([1, 1]), impl=impl), img(expected), "upfirdn2d", "hand")
    x = img([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]], dtype)
    y = downsample2d(x, setup_filter([1, 1]), impl=impl)  # 2x2 block means
    assert_close(y, img([[2.5, 4.5], [10.5, 12.5]]), "upfirdn2d", "hand")
    # A 3x3 box keeps x's size: 9 ones inside its window, 6 on edges, 4 in corners.
    y = filter2d(torch.ones([1, 1, 3, 3], dtype=dtype), setup_filter([1, 1, 1], normalize=False), impl=impl)
    assert_close(y, img([[4, 6, 4], [6, 9, 6], [4, 6, 4]]), "upfirdn2d", "hand")


# ------------------------------------------------------------------------------------------------
# Reference vs CPU plugin over a parameter grid: forward and the backward of a random projection


def check_ref_vs_cpu(x: torch.Tensor, f, **kwargs) -> torch.Tensor:
    """Compare forward and x-gradient of impl='ref' and impl='cpu'; return the ref output."""
    x = x.detach().requires_grad_(True)
    y_ref = upfirdn2d(x, f, impl="ref", **kwargs)
    y_cpu = upfirdn2d(x, f, impl="cpu", **kwargs)
    info = f"x {tuple(x.shape)} {x.dtype}, f {None if f is None else tuple(f.shape)}, {kwargs}"
    assert y_cpu.shape == y_ref.shape, info
    assert y_cpu.dtype == x.dtype, info
    assert_close(y_cpu, y_ref, "upfirdn2d", "ref_cpu", info)
    w = randn(y_ref.shape, seed=99, dtype=x.dtype)
    (g_ref,) = grads(y_ref, [x], w)
    (g_cpu,) = grads(y_cpu, [x], w)
    assert g_cpu.shape == x.shape, info
    assert_close(g_cpu, g_ref, "upfirdn2d", "ref_cpu_grad", info)
    return y_ref


FILTERS = {
    "2d_3x4": lambda: randn([3, 4], seed=7, dtype=F32),
    "sep_5": lambda: randn([5], seed=8, dtype=F32),  # >4 taps: two 1-D passes in the plugin
    "sep_3": lambda: randn([3], seed=9, dtype=F32),  # <=4 taps: one 2-D pass in the plugin
}


@pytest.mark.parametrize("up", [1, 2, 4, (1, 2), (4, 2)], ids=str)
@pytest.mark.parametrize("down", [1, 2, 4, (2, 1), (1, 4)], ids=str)
@DTYPES
def test_up_down_grid(cpu_plugin, up, down, dtype):
    x = randn([2, 3, 7, 6], seed=1, dtype=dtype)
    for make in FILTERS.values():
        check_ref_vs_cpu(x, make(), up=up, down=down, padding=(1, 2, 0, 3))
        check_ref_vs_cpu(x, make(), up=up, down=down, padding=(-1, 2, 1, -2), flip_filter=True)


@pytest.mark.parametrize("taps", range(1, 13))
@pytest.mark.parametrize("flip", [False, True])
@DTYPES
def test_filter_taps(cpu_plugin, taps, flip, dtype):
    x = randn([1, 2, 9, 8], seed=taps, dtype=dtype)
    # Cycle through (up, down) so every tap count meets resampling too.
    up, down = [(1, 1), (2, 1), (1, 2), (2, 2), ((1, 2), (2, 1))][taps % 5]
    p = (taps // 2, (taps - 1) // 2, (taps - 1) // 2, taps // 2)
    filters = [
        randn([taps], seed=taps, dtype=F32),  # separable
        randn([taps, taps], seed=taps + 50, dtype=F32),  # square 2-D
        randn([max(taps - 2, 1), taps], seed=taps + 90, dtype=F32),  # rectangular 2-D
    ]
    for f in filters:
        check_ref_vs_cpu(x, f, up=up, down=down, padding=p, flip_filter=flip)


PADDINGS = [0, 3, -1, (2, -1), (-2, 3, 1, -1), (3, 0, 0, 3), (-1, -1, -1, -1), (0, -3, -2, 0), (-4, 5, 6, -3)]


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("updown", [(1, 1), (2, 1), (1, 2), (3, 2)], ids=str)
@DTYPES
def test_padding(cpu_plugin, padding, updown, dtype):
    up, down = updown
    x = randn([2, 2, 8, 9], seed=3, dtype=dtype)
    for f in [randn([4, 3], seed=4, dtype=F32), randn([6], seed=5, dtype=F32)]:
        check_ref_vs_cpu(x, f, up=up, down=down, padding=padding)


@pytest.mark.parametrize("gain", [0.5, 3.0, -1.0, 0.0])
@DTYPES
def test_gain(cpu_plugin, gain, dtype):
    x = randn([2, 3, 6, 5], seed=11, dtype=dtype)
    for f in [randn([3, 3], seed=12, dtype=F32), randn([7], seed=13, dtype=F32), None]:
        check_ref_vs_cpu(x, f, up=2, down=1, padding=1, gain=gain)


@DTYPES
def test_memory_layouts(cpu_plugin, dtype):
    base = randn([2, 5, 7, 6], seed=21, dtype=dtype)
    layouts = {
        "contiguous": base,
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "channels_last_c1": base[:, :1].contiguous(memory_format=torch.channels_last),
        "strided_view": base[:, ::2, 1:, ::2],
        "transposed_hw": base.transpose(2, 3),
        "expanded": base[:1, :1].expand(2, 3, 7, 6),
    }
    for x in layouts.values():
        for f, kw in [
            (randn([3, 4], seed=22, dtype=F32), dict(up=2, down=1, padding=(1, 2, 2, 1))),
            (randn([6], seed=23, dtype=F32), dict(up=1, down=2, padding=(2, 3, -1, 2))),
            (randn([2], seed=24, dtype=F32), dict(up=(2, 1), down=(1, 2), padding=1, flip_filter=True)),
        ]:
            check_ref_vs_cpu(x, f, **kw)


def test_parallel_chunks(cpu_plugin):
    # Large enough that at::parallel_for splits rows (and pixels, channels_last) over 2 threads.
    torch.set_num_threads(2)  # the one_thread fixture restores the count afterwards
    base = randn([2, 8, 40, 36], seed=25, dtype=F32)
    for x in [base, base.contiguous(memory_format=torch.channels_last)]:
        check_ref_vs_cpu(x, randn([4, 4], seed=26, dtype=F32), up=2, padding=(2, 1, 2, 1))
        check_ref_vs_cpu(x, randn([8], seed=27, dtype=F32), down=2, padding=3)


@pytest.mark.parametrize("shape", [(0, 3, 5, 4), (2, 0, 5, 4), (0, 0, 3, 3)], ids=str)
@DTYPES
def test_empty_batch_or_channels(impl, shape, dtype):
    x = torch.zeros(shape, dtype=dtype, requires_grad=True)
    for f, kw in [(torch.ones([3, 2]), dict(up=2, padding=1)), (torch.ones([6]), dict(down=2, padding=3))]:
        y = upfirdn2d(x, f, impl=impl, **kw)
        fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
        upx, upy = pair(kw.get("up", 1))
        downx, downy = pair(kw.get("down", 1))
        px0, px1, py0, py1 = pad4(kw["padding"])
        expected = (
            shape[0],
            shape[1],
            out_size(shape[2], upy, downy, py0, py1, fh),
            out_size(shape[3], upx, downx, px0, px1, fw),
        )
        assert tuple(y.shape) == expected
        (g,) = grads(y, [x], torch.ones_like(y))
        assert g.shape == x.shape


def test_filter_dtype_follows_x(cpu_plugin):
    # f is float32 by convention; a float64 x computes in float64 with a float64 copy of f.
    x = randn([1, 2, 5, 5], seed=31, dtype=F64)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    y = check_ref_vs_cpu(x, f, up=2, padding=2)
    assert y.dtype == F64


def test_plugin_rejects_what_it_cannot_run(cpu_plugin):
    x16 = torch.zeros([1, 1, 4, 4], dtype=torch.float16)
    with pytest.raises(TypeError, match="float16"):
        upfirdn2d(x16, None, impl="cpu")
    # 'auto' runs dtypes the plugin lacks through the reference, with a warning (once per
    # process: tests/test_ops_dispatch.py checks the once-only with a fresh record).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OpsWarning)
        assert upfirdn2d(x16, None, up=2, impl="auto").shape == (1, 1, 8, 8)


# ------------------------------------------------------------------------------------------------
# Output sizes


def test_out_size_matches_plugin(cpu_plugin):
    grid = itertools.product([1, 2, 5], [1, 2, 3], [1, 2, 3, 4], [-3, 0, 2], [-4, 0, 1], [1, 4, 7])
    negative = 0
    for in_size, up, down, pad0, pad1, taps in grid:
        expected = out_size(in_size, up, down, pad0, pad1, taps)
        numerator = in_size * up + pad0 + pad1 - taps
        negative += numerator < 0
        # Python floor division, written out: the largest k with k*down <= numerator, plus 1.
        k = max(j for j in range(-20, 20) if j * down <= numerator)
        assert expected == k + 1
        got = cpu_plugin.upfirdn2d_out_size(in_size, up, down, pad0, pad1, taps)
        assert got == expected, (in_size, up, down, pad0, pad1, taps)
    assert negative > 50  # the grid really covers negative numerators


def test_output_shape(impl):
    x = torch.zeros([1, 1, 5, 4])
    for (upx, upy), (downx, downy), (px0, px1, py0, py1), (fh, fw) in itertools.product(
        [(1, 1), (3, 2)], [(1, 1), (2, 3)], [(0, 0, 0, 0), (-2, 1, 3, -1)], [(1, 1), (3, 2)]
    ):
        ow, oh = out_size(4, upx, downx, px0, px1, fw), out_size(5, upy, downy, py0, py1, fh)
        args = dict(up=(upx, upy), down=(downx, downy), padding=(px0, px1, py0, py1), impl=impl)
        f = torch.ones([fh, fw])
        if ow >= 1 and oh >= 1:
            assert upfirdn2d(x, f, **args).shape == (1, 1, oh, ow)
        else:
            with pytest.raises(ValueError, match="output would be"):
                upfirdn2d(x, f, **args)


# ------------------------------------------------------------------------------------------------
# CUDA plugin vs CPU plugin (GPU machines only)

CUDA_CONFIGS = [
    (randn([4], seed=71, dtype=F32), dict(up=2, padding=(2, 1, 2, 1))),
    (randn([8], seed=72, dtype=F32), dict(down=2, padding=3)),
    (randn([3, 5], seed=73, dtype=F32), dict(up=(2, 1), down=(1, 2), padding=(1, -1, 2, 0), flip_filter=True)),
    (randn([12], seed=74, dtype=F32), dict(up=4, down=2, padding=5, gain=2.0)),
]


@needs_cuda
class TestCudaParity:
    @pytest.mark.parametrize("config", range(len(CUDA_CONFIGS)))
    @pytest.mark.parametrize("dtype", [torch.float16, F32, F64], ids=["f16", "f32", "f64"])
    @pytest.mark.parametrize("channels_last", [False, True])
    def test_cuda_vs_cpu(self, cpu_plugin, config, dtype, channels_last):
        from stylegen.cuda_ops import cuda_strict

        plugin_or_skip("cuda")
        f, kw = CUDA_CONFIGS[config]
        x = randn([2, 4, 11, 9], seed=80 + config, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # The CPU plugin has no float16: its float32 result on the same (rounded) inputs is the oracle.
        xc = x.float() if dtype == torch.float16 else x
        xc, xg = xc.detach().requires_grad_(True), x.cuda().detach().requires_grad_(True)
        y_cpu, y_gpu = upfirdn2d(xc, f, impl="cpu", **kw), upfirdn2d(xg, f.cuda(), impl="cuda", **kw)
        kind = "strict" if cuda_strict() and dtype != torch.float16 else "cpu_cuda"
        assert_close(y_gpu.cpu().to(y_cpu.dtype), y_cpu, "upfirdn2d", kind, dtype=dtype)
        w = randn(y_cpu.shape, seed=90, dtype=dtype)
        (g_cpu,) = grads(y_cpu, [xc], w.to(xc.dtype))
        (g_gpu,) = grads(y_gpu, [xg], w.cuda())
        assert_close(g_gpu.cpu().to(g_cpu.dtype), g_cpu, "upfirdn2d", kind, dtype=dtype)
