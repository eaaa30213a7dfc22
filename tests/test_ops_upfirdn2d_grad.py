"""upfirdn2d derivatives: gradcheck / gradgradcheck, the double backward, and the adjoint identity.

The forward cases live in test_ops_upfirdn2d.py; the same oracles (reference, CPU plugin).
"""

from __future__ import annotations

import pytest
import torch
from test_ops_upfirdn2d import F64, pad4, pair, randn

from stylegen.ops import upfirdn2d
from stylegen.ops.upfirdn2d import out_size

import ops_helpers
from ops_helpers import assert_close, needs_cuda, plugin_or_skip
from tolerances import GRADCHECK

cpu_plugin = ops_helpers.cpu_plugin
impl = ops_helpers.impl
one_thread = ops_helpers.one_thread

pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------------------------------
# Gradients in float64: gradcheck / gradgradcheck, for the reference and the CPU plugin

GRAD_CONFIGS = [
    (torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 1.0, 1.0]]), dict(up=2, padding=(2, 1, 1, 2))),
    (torch.tensor([1.0, -2.0, 3.0, 0.5, 1.5, 2.0]), dict(down=2, padding=(2, 3, 3, 1), flip_filter=True)),
    (torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), dict(up=(2, 1), down=(1, 2), padding=1, gain=0.5)),
]


@pytest.mark.parametrize("config", range(len(GRAD_CONFIGS)))
def test_gradcheck(impl, config):
    f, kw = GRAD_CONFIGS[config]
    x = randn([1, 2, 5, 4], seed=41, dtype=F64).requires_grad_(True)

    def fn(x):
        return upfirdn2d(x, f, impl=impl, **kw)

    assert torch.autograd.gradcheck(fn, (x,), **GRADCHECK)
    assert torch.autograd.gradgradcheck(fn, (x,), **GRADCHECK)


@pytest.mark.parametrize("config", range(len(GRAD_CONFIGS)))
def test_double_backward_is_the_op_again(impl, config):
    # grad_x <A x, w> = A^T w is linear in w, and d/dw <A^T w, v> = A v: the backward's backward
    # must give upfirdn2d itself (every order of derivative is upfirdn2d, up to the adjoint).
    f, kw = GRAD_CONFIGS[config]
    x = randn([2, 3, 5, 4], seed=42, dtype=F64).requires_grad_(True)
    y = upfirdn2d(x, f, impl=impl, **kw)
    w = randn(y.shape, seed=43).requires_grad_(True)
    (gx,) = torch.autograd.grad((y * w).sum(), [x], create_graph=True)
    v = randn(x.shape, seed=44)
    (gw,) = torch.autograd.grad((gx * v).sum(), [w])
    assert_close(gw, upfirdn2d(v, f, impl="ref", **kw), "upfirdn2d", "ref_cpu_grad")


# ------------------------------------------------------------------------------------------------
# The adjoint: <A x, y> == <x, A^T y>, with A^T written out as upfirdn2d again


def transpose_args(in_h: int, in_w: int, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """upfirdn2d arguments of the adjoint of upfirdn2d(., f, up, down, padding, flip, gain).

    Per axis, output o reads padded sample o*down + t (t < taps), i.e. input i where
    i*up = o*down + t - pad0. The adjoint scatters back: zero-insert by `down`, correlate with the
    flipped filter, keep every `up`-th sample. Its padding puts sample i*up of that signal at the
    start, pad0' = taps - pad0 - 1, and pad1' makes the output length exactly `in`.
    """
    upx, upy = pair(up)
    downx, downy = pair(down)
    px0, px1, py0, py1 = pad4(padding)
    fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else tuple(f.shape)
    out_w = out_size(in_w, upx, downx, px0, px1, fw)
    out_h = out_size(in_h, upy, downy, py0, py1, fh)
    p = (
        fw - px0 - 1,
        in_w * upx - out_w * downx + px0 - upx + 1,
        fh - py0 - 1,
        in_h * upy - out_h * downy + py0 - upy + 1,
    )
    return dict(up=(downx, downy), down=(upx, upy), padding=p, flip_filter=not flip_filter, gain=gain)


ADJOINT_CONFIGS = [
    (torch.tensor([1.0, 3.0, 3.0, 1.0]), dict(up=2, padding=(2, 1, 2, 1))),
    (torch.tensor([1.0, 3.0, 3.0, 1.0]), dict(down=2, padding=1)),
    (torch.arange(12.0).reshape(3, 4) - 5, dict(up=(2, 3), down=(3, 2), padding=(1, 2, -1, 3))),
    (torch.tensor([0.5, -1.0, 2.0, 1.0, 3.0, -0.5, 1.0]), dict(up=4, down=2, padding=(3, -2, 0, 4), flip_filter=True)),
    (torch.tensor([[2.0, -1.0], [0.5, 1.0], [1.0, 3.0]]), dict(up=(1, 2), down=(4, 1), padding=(0, 3, 2, 0), gain=2.5)),
    (torch.tensor([1.0]), dict(up=3, down=3, padding=(-1, 1, 2, -2))),
]


@pytest.mark.parametrize("config", range(len(ADJOINT_CONFIGS)))
def test_adjoint_identity(impl, config):
    f, kw = ADJOINT_CONFIGS[config]
    x = randn([2, 3, 9, 7], seed=51 + config, dtype=F64).requires_grad_(True)
    ax = upfirdn2d(x, f, impl=impl, **kw)
    y = randn(ax.shape, seed=61 + config)
    # A^T y from the written-out formula, through the reference only.
    at_y = upfirdn2d(y, f, impl="ref", **transpose_args(9, 7, f, **kw))
    assert at_y.shape == x.shape
    lhs, rhs = (ax * y).sum(), (x * at_y).sum()
    assert_close(lhs, rhs, "upfirdn2d", "adjoint", f"<Ax, y>={lhs.item()} <x, A^T y>={rhs.item()}")
    # The op's backward (autograd of the reference; the plugin's own backward) is the same A^T.
    (g,) = torch.autograd.grad((ax * y).sum(), [x])
    assert_close(g, at_y, "upfirdn2d", "ref_cpu_grad")


# ------------------------------------------------------------------------------------------------
# No gradient w.r.t. f, on every impl: f is detached (f.grad stays None), never an error

FILTERS = [
    torch.tensor([1.0, 3.0, 3.0, 1.0]),  # short separable: the plugins take its outer product
    torch.tensor([1.0, -2.0, 3.0, 0.5, 1.5, 2.0]),  # long separable: two 1-D passes
    torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]),  # 2-D
]


@pytest.mark.parametrize("f", FILTERS, ids=["sep4", "sep6", "2d"])
def test_filter_gets_no_gradient(impl, f):
    f = f.clone().requires_grad_(True)
    x = randn([2, 3, 6, 5], seed=71, dtype=F64).requires_grad_(True)
    y = upfirdn2d(x, f, up=2, down=(1, 2), padding=2, impl=impl)
    (y * randn(y.shape, seed=72)).sum().backward()
    assert f.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Second order: the double backward does not reach f either.
    x2 = x.detach().requires_grad_(True)
    (gx,) = torch.autograd.grad(upfirdn2d(x2, f, down=2, padding=3, impl=impl).square().sum(), [x2], create_graph=True)
    gx.sum().backward()
    assert f.grad is None and x2.grad is not None


@pytest.mark.parametrize("f", FILTERS, ids=["sep4", "sep6", "2d"])
def test_filter_alone_does_not_make_the_output_differentiable(impl, f):
    # The same on every impl: a trainable f with a constant x gives a constant output.
    y = upfirdn2d(randn([1, 2, 5, 5], seed=73, dtype=F64), f.clone().requires_grad_(True), up=2, impl=impl)
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


@needs_cuda
def test_gradcheck_cuda():
    plugin_or_skip("cuda")
    for f, kw in GRAD_CONFIGS:
        x = randn([1, 2, 5, 4], seed=41).cuda().requires_grad_(True)

        f_cuda = f.cuda()

        def fn(x, f_cuda=f_cuda, kw=kw):
            return upfirdn2d(x, f_cuda, impl="cuda", **kw)

        assert torch.autograd.gradcheck(fn, (x,), **GRADCHECK)
        assert torch.autograd.gradgradcheck(fn, (x,), **GRADCHECK)
