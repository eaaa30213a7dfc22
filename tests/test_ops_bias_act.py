"""bias_act: hand-computed cases, reference vs CPU plugin (values, first and second-order
gradients), gradcheck / gradgradcheck, CUDA parity (GPU machines only)."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from stylegen.ops import ACTIVATIONS, bias_act
from stylegen.ops._dispatch import OpsWarning

import ops_helpers
from ops_helpers import assert_close, grads, needs_cuda, plugin_or_skip
from tolerances import GRADCHECK

# Fixtures, bound by name so pytest finds them here (conftest.py is the suite's, not the ops').
cpu_plugin = ops_helpers.cpu_plugin
impl = ops_helpers.impl
one_thread = ops_helpers.one_thread

pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64 = torch.float32, torch.float64
DTYPES = pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
ACTS = list(ACTIVATIONS)
PIECEWISE_LINEAR = ("linear", "relu", "lrelu")


def t(values, dtype=F64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def randn(shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


# ------------------------------------------------------------------------------------------------
# Hand-computed cases (run for the reference and the CPU plugin)


def test_activation_table():
    # NVIDIA's defaults: lrelu slope 0.2; gain sqrt(2) where the activation halves the variance.
    s2 = 1.4142135623730951
    gains = {
        "linear": 1,
        "relu": s2,
        "lrelu": s2,
        "tanh": 1,
        "sigmoid": 1,
        "elu": 1,
        "selu": 1,
        "softplus": 1,
        "swish": s2,
    }
    assert ACTS == list(gains)
    for name, gain in gains.items():
        assert ACTIVATIONS[name].def_gain == gain, name
        assert ACTIVATIONS[name].def_alpha == (0.2 if name == "lrelu" else 0), name


# act(x) * default gain at x = -1, 0.5, 2, from the closed forms (16 significant digits):
# relu/lrelu/swish carry sqrt(2); lrelu(-1) = -0.2; elu(-1) = e^-1 - 1; selu = 1.0507 * (x or
# 1.6733 * (e^x - 1)); softplus = log(1 + e^x); swish = x * sigmoid(x).
DEFAULT_GAIN_VALUES = {
    "linear": [-1.0, 0.5, 2.0],
    "relu": [0.0, 0.7071067811865476, 2.8284271247461903],
    "lrelu": [-0.28284271247461906, 0.7071067811865476, 2.8284271247461903],
    "tanh": [-0.7615941559557649, 0.46211715726000974, 0.9640275800758169],
    "sigmoid": [0.2689414213699951, 0.6224593312018546, 0.8807970779778823],
    "elu": [-0.6321205588285577, 0.5, 2.0],
    "selu": [-1.1113307378125625, 0.5253504936777402, 2.101401974710961],
    "softplus": [0.31326168751822286, 0.9740769841801067, 2.1269280110429727],
    "swish": [-0.38034060558534444, 0.44014521410567453, 2.4912703467498276],
}


@pytest.mark.parametrize("act", ACTS)
@DTYPES
def test_default_gain_values(impl, act, dtype):
    y = bias_act(t([[-1.0, 0.5, 2.0]], dtype), act=act, impl=impl)
    assert_close(y, t([DEFAULT_GAIN_VALUES[act]]), "bias_act", "hand", act)


@DTYPES
def test_lrelu_defaults(impl, dtype):
    # alpha 0.2, gain sqrt(2): [-1, 0, 2] -> [-0.2, 0, 2] * 1.41421356...
    y = bias_act(t([[-1.0, 0.0, 2.0]], dtype), act="lrelu", impl=impl)
    assert_close(y, t([[-0.28284271247461906, 0.0, 2.8284271247461903]]), "bias_act", "hand")
    # Explicit alpha and gain replace the defaults: [-1, 0, 2] -> [-0.5, 0, 2] * 3.
    y = bias_act(t([[-1.0, 0.0, 2.0]], dtype), act="lrelu", alpha=0.5, gain=3, impl=impl)
    assert_close(y, t([[-1.5, 0.0, 6.0]]), "bias_act", "hand")


@DTYPES
def test_clamp_edges(impl, dtype):
    x = t([[-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]], dtype)
    # Beyond +-clamp saturates; exactly +-clamp stays.
    assert_close(bias_act(x, clamp=1, impl=impl), t([[-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0]]), "bias_act", "hand")
    # The clamp applies after the gain: 2x = [-6, -2, -1, 0, 1, 2, 6].
    y = bias_act(x, gain=2, clamp=1, impl=impl)
    assert_close(y, t([[-1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0]]), "bias_act", "hand")
    # lrelu(alpha .5, gain 1): [-1.5, -.5, -.25, 0, .5, 1, 3] -> clamp .5.
    y = bias_act(x, act="lrelu", alpha=0.5, gain=1, clamp=0.5, impl=impl)
    assert_close(y, t([[-0.5, -0.5, -0.25, 0.0, 0.5, 0.5, 0.5]]), "bias_act", "hand")
    # ... after the bias too: x + 1 = [-2, 0, .5, 1, 1.5, 2, 4].
    y = bias_act(x, t([1.0], dtype), dim=0, clamp=1.5, impl=impl)
    assert_close(y, t([[-1.5, 0.0, 0.5, 1.0, 1.5, 1.5, 1.5]]), "bias_act", "hand")
    # clamp=0 zeroes everything.
    assert_close(bias_act(x, clamp=0, impl=impl), torch.zeros_like(x), "bias_act", "hand")


@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1])
@DTYPES
def test_bias_along_dim(impl, dim, dtype):
    shape = (2, 3, 4, 5)
    b = t([10.0 * (i + 1) for i in range(shape[dim])], dtype)  # 10, 20, 30, ...
    y = bias_act(torch.full(shape, 0.25, dtype=dtype), b, dim=dim, impl=impl)
    expected = torch.empty(shape, dtype=F64)
    for idx in itertools.product(*map(range, shape)):
        expected[idx] = 0.25 + 10.0 * (idx[dim] + 1)
    assert_close(y, expected, "bias_act", "hand", f"dim={dim}")


@DTYPES
def test_bias_fully_connected(impl, dtype):
    # The FC layer's case: x [batch, features], bias along dim 1, relu gain 2.
    x = t([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]], dtype)
    y = bias_act(x, t([1.0, 1.0, 10.0], dtype), act="relu", gain=2, impl=impl)
    assert_close(y, t([[4.0, 0.0, 26.0], [0.0, 12.0, 8.0]]), "bias_act", "hand")


def test_identity_is_x(impl):
    # linear, gain 1, no bias, no clamp: the input comes back unchanged, gradient 1.
    x = randn([2, 3, 4, 4], seed=1).requires_grad_(True)
    y = bias_act(x, impl=impl)
    assert_close(y, x.detach(), "bias_act", "hand")
    (g,) = torch.autograd.grad(y.sum(), [x])
    assert_close(g, torch.ones_like(x), "bias_act", "hand")


# ------------------------------------------------------------------------------------------------
# Reference vs CPU plugin: forward, first- and second-order gradients


def run_all_orders(impl: str, x, b, kwargs):
    """y, d/d(x, b) of <y, w>, and d/d(x, b, w) of <grad, (v, u)>, all via autograd."""
    x = x.detach().requires_grad_(True)
    b = None if b is None else b.detach().requires_grad_(True)
    inputs = [x] if b is None else [x, b]
    y = bias_act(x, b, impl=impl, **kwargs)
    w = randn(y.shape, seed=5, dtype=x.dtype).to(x.device).requires_grad_(True)
    g = grads(y, inputs, w, create_graph=True)
    vs = [randn(i.shape, seed=6 + k, dtype=x.dtype).to(x.device) for k, i in enumerate(inputs)]
    h = grads(g, inputs + [w], vs)
    return y, g, h


def check_ref_vs_cpu(x, b=None, **kwargs):
    info = f"x {tuple(x.shape)} stride {x.stride()} {x.dtype}, b {b is not None}, {kwargs}"
    y_ref, g_ref, h_ref = run_all_orders("ref", x, b, kwargs)
    y_cpu, g_cpu, h_cpu = run_all_orders("cpu", x, b, kwargs)
    assert y_cpu.shape == x.shape and y_cpu.dtype == x.dtype, info
    assert_close(y_cpu, y_ref, "bias_act", "ref_cpu", info)
    for name, a, e in zip(["dx", "db"], g_cpu, g_ref):
        assert_close(a, e, "bias_act", "ref_cpu_grad", f"first order {name}: {info}")
    for name, a, e in zip(["d2x", "d2b", "d2w"] if b is not None else ["d2x", "d2w"], h_cpu, h_ref):
        assert_close(a, e, "bias_act", "ref_cpu_grad", f"second order {name}: {info}")


def layouts(dtype):
    """(name, x, dim of the bias or None)."""
    x4 = 2 * randn([2, 5, 4, 3], seed=11, dtype=dtype)
    cl = x4.contiguous(memory_format=torch.channels_last)
    return [
        ("4d_dim0", x4, 0),
        ("4d_dim1", x4, 1),
        ("4d_dim2", x4, 2),
        ("4d_dim3", x4, 3),
        ("4d_no_bias", x4, None),
        ("fc_dim1", 2 * randn([6, 7], seed=12, dtype=dtype), 1),
        ("3d_dim2", 2 * randn([3, 4, 5], seed=13, dtype=dtype), 2),
        ("1d_dim0", 2 * randn([7], seed=15, dtype=dtype), 0),  # db must not be summed to a scalar
        ("5d_dim4", 2 * randn([2, 1, 3, 2, 4], seed=16, dtype=dtype), 4),
        ("channels_last_dim1", cl, 1),
        ("channels_last_dim2", cl, 2),
        ("channels_last_dim3", cl, 3),
        ("strided_view_dim1", x4[:, 1:4, :, ::2], 1),
    ]


@pytest.mark.parametrize("act", ACTS)
@DTYPES
def test_acts_dims_layouts(cpu_plugin, act, dtype):
    for _name, x, dim in layouts(dtype):
        b = None if dim is None else randn([x.shape[dim]], seed=14, dtype=dtype)
        check_ref_vs_cpu(x, b, dim=0 if dim is None else dim, act=act)


VARIANTS = {
    "gain": dict(gain=0.7),
    "alpha": dict(alpha=0.3),
    "gain_alpha": dict(gain=-1.5, alpha=0.1),
    "clamp": dict(clamp=0.4),
    "clamp_gain": dict(clamp=1.3, gain=2.0, alpha=0.1),
}


def variant_params():
    for act, variant in itertools.product(ACTS, VARIANTS):
        yield pytest.param(act, variant, id=f"{act}-{variant}")


@pytest.mark.parametrize("act, variant", list(variant_params()))
@DTYPES
def test_gain_alpha_clamp(cpu_plugin, act, variant, dtype):
    x = 2 * randn([3, 4, 3, 5], seed=21, dtype=dtype)
    b = randn([4], seed=22, dtype=dtype)
    check_ref_vs_cpu(x, b, act=act, **VARIANTS[variant])
    check_ref_vs_cpu(x.contiguous(memory_format=torch.channels_last), b, act=act, **VARIANTS[variant])


def test_swish_clamp_gradient(cpu_plugin):
    # swish(3) * sqrt(2) = 4.01 saturates at clamp 0.5: d/dx must be 0 there, as in the reference.
    x = t([[3.0, 0.1]]).requires_grad_(True)
    (g,) = torch.autograd.grad(bias_act(x, act="swish", clamp=0.5, impl="cpu").sum(), [x])
    (g_ref,) = torch.autograd.grad(bias_act(x, act="swish", clamp=0.5, impl="ref").sum(), [x])
    assert g_ref[0, 0] == 0
    assert_close(g, g_ref, "bias_act", "ref_cpu_grad")


@pytest.mark.parametrize("impl_", ["ref", "cpu"])
def test_lrelu_negative_alpha_refused(cpu_plugin, impl_):
    # The plugins pick the lrelu derivative branch from sign(y), which a negative slope breaks.
    with pytest.raises(ValueError, match="lrelu alpha must be >= 0"):
        bias_act(t([[-1.0, 2.0]]), act="lrelu", alpha=-0.1, impl=impl_)


@pytest.mark.parametrize("act", ACTS)
def test_large_inputs_saturate_alike(cpu_plugin, act):
    # Past the kernels' exp range (|x| > 80, swish' > 40) the plugin switches to the limits.
    x = t([[-200.0, -90.0, -45.0, -30.0, 30.0, 45.0, 90.0, 200.0]])
    check_ref_vs_cpu(x, act=act)
    check_ref_vs_cpu(x.float(), act=act)


def test_parallel_chunks(cpu_plugin):
    # More than one at::parallel_for grain (32768 elements) over 2 threads, bias dim inner and outer.
    torch.set_num_threads(2)  # the one_thread fixture restores the count afterwards
    x = randn([4, 64, 24, 20], seed=31, dtype=F32)
    for xx in [x, x.contiguous(memory_format=torch.channels_last)]:
        for act, dim in [("lrelu", 1), ("swish", 1), ("tanh", 3)]:
            b = randn([x.shape[dim]], seed=32, dtype=F32)
            y_cpu = bias_act(xx, b, dim=dim, act=act, clamp=1.0, impl="cpu")
            y_ref = bias_act(xx, b, dim=dim, act=act, clamp=1.0, impl="ref")
            assert_close(y_cpu, y_ref, "bias_act", "ref_cpu", f"{act} dim {dim}")


@pytest.mark.parametrize("shape", [(0, 3, 2, 2), (2, 0, 2, 2), (0, 4)], ids=str)
def test_empty(impl, shape):
    x = torch.zeros(shape, dtype=F64, requires_grad=True)
    b = torch.zeros([shape[1]], dtype=F64, requires_grad=True)
    y = bias_act(x, b, act="lrelu", clamp=1, impl=impl)
    assert y.shape == x.shape
    gx, gb = grads(y, [x, b], torch.ones_like(y))
    assert gx.shape == x.shape and gb.shape == b.shape


def test_plugin_rejects_what_it_cannot_run(cpu_plugin):
    x16 = torch.zeros([2, 3], dtype=torch.float16)
    with pytest.raises(TypeError, match="float16"):
        bias_act(x16, impl="cpu")
    with warnings.catch_warnings():  # the reference, with a warning (tests/test_ops_dispatch.py)
        warnings.simplefilter("ignore", OpsWarning)
        assert bias_act(x16, act="relu", impl="auto").dtype == torch.float16
    with pytest.raises(ValueError, match="size x.shape"):
        bias_act(torch.zeros([2, 3]), torch.zeros([2]), dim=1, impl="cpu")
    with pytest.raises(ValueError, match="unknown act"):
        bias_act(torch.zeros([2, 3]), act="gelu", impl="cpu")


# ------------------------------------------------------------------------------------------------
# gradcheck / gradgradcheck in float64


def safe_inputs(act: str, gain: float, clamp: float | None, seed: int):
    """x, b with x + b away from 0 (the kinks) and the output away from +-clamp (the edges).

    Finite differences with eps 1e-6 straddle a kink within 1e-6; a margin of 0.05 keeps every
    sample's one-sided derivative the true one.
    """
    g = torch.Generator().manual_seed(seed)
    b = (torch.rand([3], generator=g, dtype=F64) - 0.5) * 0.2
    x = torch.randn([2, 3, 2, 2], generator=g, dtype=F64) * 1.5
    spec = ACTIVATIONS[act]
    for _ in range(100):
        z = x + b[None, :, None, None]
        y = spec.func(z, spec.def_alpha) * gain
        bad = z.abs() < 0.05
        if clamp is not None:
            bad |= (y.abs() - clamp).abs() < 0.05
        if not bad.any():
            return x, b
        x = torch.where(bad, torch.randn(x.shape, generator=g, dtype=F64) * 1.5, x)
    raise AssertionError("could not draw inputs away from the kinks and clamp edges")


@pytest.mark.parametrize("clamp", [None, 0.8], ids=["no_clamp", "clamp"])
@pytest.mark.parametrize("act", ACTS)
def test_gradcheck(impl, act, clamp):
    gain = ACTIVATIONS[act].def_gain
    x, b = safe_inputs(act, gain, clamp, seed=ACTS.index(act))
    x.requires_grad_(True)
    b.requires_grad_(True)

    def fn(x, b):
        return bias_act(x, b, act=act, clamp=clamp, impl=impl)

    assert torch.autograd.gradcheck(fn, (x, b), **GRADCHECK)
    assert torch.autograd.gradgradcheck(fn, (x, b), **GRADCHECK)


# ------------------------------------------------------------------------------------------------
# CUDA plugin vs CPU plugin (GPU machines only)


@needs_cuda
class TestCudaParity:
    @pytest.mark.parametrize("act", ACTS)
    @pytest.mark.parametrize("dtype", [torch.float16, F32, F64], ids=["f16", "f32", "f64"])
    @pytest.mark.parametrize("clamp", [None, 0.5])
    def test_cuda_vs_cpu(self, cpu_plugin, act, dtype, clamp):
        from stylegen.cuda_ops import cuda_strict

        plugin_or_skip("cuda")
        for name, x, dim in layouts(dtype):
            b = None if dim is None else randn([x.shape[dim]], seed=14, dtype=dtype)
            kw = dict(dim=0 if dim is None else dim, act=act, clamp=clamp)
            # The CPU plugin has no float16: its float32 result on the same inputs is the oracle.
            xc, bc = (x.float(), None if b is None else b.float()) if dtype == torch.float16 else (x, b)
            y_cpu, g_cpu, h_cpu = run_all_orders("cpu", xc, bc, kw)
            y_gpu, g_gpu, h_gpu = run_all_orders("cuda", x.cuda(), None if b is None else b.cuda(), kw)
            strict = cuda_strict() and act in PIECEWISE_LINEAR and dtype != torch.float16
            kind = "strict" if strict else "cpu_cuda"
            info = f"{name} {kw}"
            assert_close(y_gpu.cpu().to(y_cpu.dtype), y_cpu, "bias_act", kind, info, dtype=dtype)
            for a, e in zip(g_gpu + h_gpu, g_cpu + h_cpu):
                assert_close(a.cpu().to(e.dtype), e, "bias_act", kind, info, dtype=dtype)

    @pytest.mark.parametrize("act", ACTS)
    def test_gradcheck_cuda(self, act):
        plugin_or_skip("cuda")
        x, b = safe_inputs(act, ACTIVATIONS[act].def_gain, 0.8, seed=ACTS.index(act))
        x, b = x.cuda().requires_grad_(True), b.cuda().requires_grad_(True)

        def fn(x, b):
            return bias_act(x, b, act=act, clamp=0.8, impl="cuda")

        assert torch.autograd.gradcheck(fn, (x, b), **GRADCHECK)
        assert torch.autograd.gradgradcheck(fn, (x, b), **GRADCHECK)


def test_autograd_works_after_inference_mode(impl):
    # Regression: state created under torch.inference_mode (sampling) must not leak into training.
    x = torch.randn([2, 3, 4, 4])
    with torch.inference_mode():
        bias_act(x, torch.zeros(3), act="lrelu", impl=impl)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(bias_act(xg, torch.zeros(3), act="lrelu", impl=impl).sum(), [xg])
    assert torch.isfinite(g).all()
