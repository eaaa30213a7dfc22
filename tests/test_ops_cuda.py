"""CUDA plugin at scale and on streams: grid-stride loops vs the reference, non-default streams.

The kernels (cuda_ops/cuda/ops_cuda.cu) launch at most kMaxBlocks blocks of kThreads threads and
let each thread stride over the rest, so a tensor with more elements than that "grid cap" is the
only way to run the stride loop's second and later trips. The parity tests of
test_ops_upfirdn2d.py / test_ops_bias_act.py use small tensors and never get there.

Oracle: the reference path in float64 on the GPU (cudnn has no TF32 for float64, so conv2d is
an exact-enough oracle), rounded to the dtype under test.
"""

from __future__ import annotations

import re

import pytest
import torch

from stylegen.cuda_ops import ROOT
from stylegen.ops import bias_act, setup_filter, upfirdn2d
from stylegen.ops.upfirdn2d import out_size

import ops_helpers
from ops_helpers import assert_close, grads, needs_cuda

# Fixtures, bound by name so pytest finds them here (conftest.py is the suite's, not the ops').
cuda_plugin = ops_helpers.cuda_plugin

F32, F64 = torch.float32, torch.float64


def grid_cap() -> int:
    """Elements one launch covers without striding: kMaxBlocks * kThreads of ops_cuda.cu."""
    src = (ROOT / "cuda" / "ops_cuda.cu").read_text()
    threads = re.search(r"constexpr int kThreads = (\d+);", src)
    blocks = re.search(r"constexpr int64_t kMaxBlocks = (\d+);", src)
    assert threads and blocks, "ops_cuda.cu no longer declares kThreads / kMaxBlocks: update this test"
    return int(threads.group(1)) * int(blocks.group(1))


# (name, x shape, filter taps, up, down, padding): outputs (or, for 'down', the gradient) with
# more elements than the grid cap, and a count that is not a multiple of it (a partial last trip).
UPFIRDN2D_CASES = [
    ("up2", [2, 8, 771, 769], [1, 3, 3, 1], 2, 1, (2, 1, 2, 1)),
    ("down2", [3, 8, 2100, 2048], [1, 7, 21, 35, 35, 21, 7, 1], 1, 2, 3),
]
BIAS_ACT_SHAPE = [3, 256, 211, 211]


def upfirdn2d_out_shape(shape, taps, up, down, padding) -> list[int]:
    p = (padding,) * 4 if isinstance(padding, int) else padding
    fw = len(taps)
    h = out_size(shape[2], up, down, p[2], p[3], fw)
    w = out_size(shape[3], up, down, p[0], p[1], fw)
    return [shape[0], shape[1], h, w]


def numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def test_large_cases_exceed_the_grid_cap():
    """Runs without a GPU: the sizes below really make the kernels stride."""
    cap = grid_cap()
    for name, shape, taps, up, down, padding in UPFIRDN2D_CASES:
        out = numel(upfirdn2d_out_shape(shape, taps, up, down, padding))
        strided = max(out, numel(shape))  # forward output, or the backward's (x-sized) output
        assert strided > cap and strided % cap, (name, out, numel(shape), cap)
    assert numel(BIAS_ACT_SHAPE) > 2 * cap and numel(BIAS_ACT_SHAPE) % cap


def randn_cuda(shape, seed: int, dtype=F32) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(shape, generator=g, device="cuda", dtype=dtype)


@needs_cuda
@pytest.mark.parametrize("case", UPFIRDN2D_CASES, ids=[c[0] for c in UPFIRDN2D_CASES])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_upfirdn2d_large_matches_ref(cuda_plugin, case, channels_last):
    name, shape, taps, up, down, padding = case
    x = randn_cuda(shape, seed=1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    f = setup_filter(taps, device="cuda")
    kw = dict(up=up, down=down, padding=padding)
    xg = x.detach().requires_grad_(True)
    y = upfirdn2d(xg, f, impl="cuda", **kw)
    assert list(y.shape) == upfirdn2d_out_shape(shape, taps, up, down, padding)
    x64 = x.detach().double().requires_grad_(True)
    y64 = upfirdn2d(x64, f, impl="ref", **kw)
    assert_close(y, y64.float(), "upfirdn2d", "ref_cpu", f"{name} channels_last={channels_last}")
    # The backward is upfirdn2d again, x-sized: for 'down2' it is the launch that strides.
    w = randn_cuda(y.shape, seed=2)
    (g,) = grads(y, [xg], w)
    (g64,) = grads(y64, [x64], w.double())
    assert_close(g, g64.float(), "upfirdn2d", "ref_cpu_grad", f"{name} grad")


@needs_cuda
def test_upfirdn2d_large_float64_matches_ref(cuda_plugin):
    name, shape, taps, up, down, padding = UPFIRDN2D_CASES[0]
    x = randn_cuda(shape, seed=3, dtype=F64)
    f = setup_filter(taps, device="cuda")
    kw = dict(up=up, down=down, padding=padding)
    y = upfirdn2d(x, f, impl="cuda", **kw)
    assert_close(y, upfirdn2d(x, f, impl="ref", **kw), "upfirdn2d", "ref_cpu", name)


@needs_cuda
@pytest.mark.parametrize("act, clamp", [("linear", None), ("lrelu", None), ("lrelu", 0.5), ("tanh", None)])
def test_bias_act_large_matches_ref(cuda_plugin, act, clamp):
    x = randn_cuda(BIAS_ACT_SHAPE, seed=4)
    b = randn_cuda([BIAS_ACT_SHAPE[1]], seed=5)
    xg = x.detach().requires_grad_(True)
    y = bias_act(xg, b, act=act, clamp=clamp, impl="cuda")
    x64 = x.detach().double().requires_grad_(True)
    y64 = bias_act(x64, b.double(), act=act, clamp=clamp, impl="ref")
    assert_close(y, y64.float(), "bias_act", "ref_cpu", f"act={act} clamp={clamp}")
    if clamp is not None:
        # The clamp's gradient mask flips where float32 and float64 round to either side of the
        # clamp: no fair oracle at this size. test_ops_bias_act.py covers it on chosen inputs.
        return
    w = randn_cuda(y.shape, seed=6)
    (g,) = grads(y, [xg], w)  # the grad=1 kernel, over the same large grid
    (g64,) = grads(y64, [x64], w.double())
    assert_close(g, g64.float(), "bias_act", "ref_cpu_grad", f"act={act} grad")


# ------------------------------------------------------------------------------------------------
# Streams: the plugins launch on torch's current stream (c10::cuda::getCurrentCUDAStream)

SPIN_CYCLES = 200_000_000  # ~0.1 s of torch.cuda._sleep on a ~2 GHz GPU


def chain(x: torch.Tensor, f: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The synthesis network's pattern: upsample, then bias + lrelu."""
    return bias_act(upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), impl="cuda"), b, act="lrelu", impl="cuda")


@needs_cuda
def test_ops_on_a_side_stream_match_the_default_stream(cuda_plugin):
    x = randn_cuda([4, 16, 64, 64], seed=7)
    f, b = setup_filter([1, 3, 3, 1], device="cuda"), randn_cuda([16], seed=8)
    w = randn_cuda([4, 16, 128, 128], seed=9)
    xg = x.detach().requires_grad_(True)
    expected = chain(xg, f, b)
    (expected_grad,) = grads(expected, [xg], w)
    side = torch.cuda.Stream()
    assert side != torch.cuda.current_stream()
    side.wait_stream(torch.cuda.current_stream())  # x, w were made on the default stream
    with torch.cuda.stream(side):
        xs = x.detach().requires_grad_(True)
        y = chain(xs, f, b)
        (g,) = grads(y, [xs], w)  # autograd runs the backward on the forward's stream
    torch.cuda.current_stream().wait_stream(side)
    # One thread per output element, no atomics: the same inputs give the same bits.
    assert torch.equal(y, expected)
    assert torch.equal(g, expected_grad)


@needs_cuda
def test_ops_respect_stream_order(cuda_plugin):
    """Work queued before an op on its stream finishes first, whatever other streams do.

    The side stream is held by a spin kernel, then fills `dst`, then runs the ops on it. Launched
    on the right stream they read the filled `dst`; launched on another stream (say the legacy
    default, which a non-blocking side stream does not wait for) they would run at once on zeros.
    """
    src = randn_cuda([4, 16, 64, 64], seed=10)
    f, b = setup_filter([1, 3, 3, 1], device="cuda"), randn_cuda([16], seed=11)
    expected = chain(src, f, b)
    dst = torch.zeros_like(src)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(SPIN_CYCLES)
        dst.copy_(src)
        y = chain(dst, f, b)
        z = y * 2  # consumed on the same stream, before any synchronisation
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(y, expected)
    assert torch.equal(z, expected * 2)
