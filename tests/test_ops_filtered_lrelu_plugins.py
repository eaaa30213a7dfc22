"""filtered_lrelu's compiled plugins: the CPU plugin against the reference over a parameter grid
(values and both gradients), gradcheck, its parallel loop and its argument checks; the CUDA plugin
against the CPU one (GPU machines only). NVIDIA's 6 reference calls through impl='cpu' are in
test_ops_filtered_lrelu.py (test_nvidia_reference_call), with the dispatch tests.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from test_ops_filtered_lrelu import GRAD_CONFIGS, SQRT2, img, randn

from stylegen.ops import filtered_lrelu
from stylegen.ops._dispatch import OpsWarning

import ops_helpers
from ops_helpers import assert_close, grads, needs_cuda, plugin_or_skip
from tolerances import GRADCHECK

one_thread = ops_helpers.one_thread
cpu_plugin = ops_helpers.cpu_plugin
fake_build = ops_helpers.fake_build
pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64 = torch.float32, torch.float64


# ------------------------------------------------------------------------------------------------
# CPU plugin vs the reference: a grid over the contract's arguments, values and both gradients


def filt(kind: str, seed: int) -> torch.Tensor | None:
    """A float32 test filter: '1d-N' (N separable taps), '2d-HxW', or 'none'; N(0, 1/taps) taps."""
    if kind == "none":
        return None
    shape = [int(v) for v in kind[3:].split("x")]
    return (randn(shape, seed) / math.sqrt(math.prod(shape))).float()


# (fu, fd, padding, flip, clamp, gain, slope, bias): crossed with up, down, dtype and layout below.
VARIANTS = [
    ("1d-4", "1d-3", [2, 1, 3, 0], False, None, SQRT2, 0.2, True),
    ("2d-3x4", "2d-2x3", [-1, 2, 0, -2], True, 0.3, 1.7, 0.05, False),
    ("1d-12", "2d-5x1", 6, False, 0.5, 1.0, 1.0, True),
    ("none", "1d-5", [0, 1], True, None, 2.5, 0.0, True),
    ("2d-1x6", "none", [3, -1, -2, 4], False, 0.0, SQRT2, 0.3, True),
    ("1d-7", "1d-8", [5, 4, 6, 3], True, 1.0, 1.0, 0.2, False),
]
GRID = list(itertools.product([1, 2, 4], [1, 2, 4], [F32, F64]))


def run_both(x, b, fu, fd, kw, seed):
    """(y, dx, db) of the reference and of the CPU plugin: sum(y * r) for a random r."""
    out = []
    for impl in ("ref", "cpu"):
        xi = x.detach().clone().requires_grad_(True)
        bi = None if b is None else b.detach().clone().requires_grad_(True)
        y = filtered_lrelu(xi, fu, fd, bi, impl=impl, **kw)
        r = randn(y.shape, seed, y.dtype)
        out.append((y, *grads(y, [xi] if bi is None else [xi, bi], r)))
    return out


@pytest.mark.parametrize("up, down, dtype", GRID, ids=[f"up{u}-down{d}-{str(t)[-7:]}" for u, d, t in GRID])
def test_cpu_matches_reference_grid(cpu_plugin, up, down, dtype):
    checked = 0
    for i, (fu_k, fd_k, pad, flip, clamp, gain, slope, bias) in enumerate(VARIANTS):
        fu, fd = filt(fu_k, 30 + i), filt(fd_k, 40 + i)
        kw = dict(up=up, down=down, padding=pad, flip_filter=flip, clamp=clamp, gain=gain, slope=slope)
        x = randn([2, 3, 9, 7], seed=50 + i, dtype=dtype)
        if (i + up + down) % 2:  # half the cells channels_last
            x = x.contiguous(memory_format=torch.channels_last)
        b = randn([3], seed=60 + i, dtype=dtype) if bias else None
        try:
            (y_ref, *g_ref), (y_cpu, *g_cpu) = run_both(x, b, fu, fd, kw, seed=70 + i)
        except ValueError as e:  # the output would be empty for this cell: both refuse alike
            assert "output would be" in str(e)
            continue
        what = f"variant {i}: fu {fu_k}, fd {fd_k}, {kw}"
        assert y_cpu.dtype == dtype and y_cpu.shape == y_ref.shape
        assert_close(y_cpu, y_ref, "filtered_lrelu", "ref_cpu", what)
        for name, g_c, g_r in zip(["dx", "db"], g_cpu, g_ref):
            assert_close(g_c, g_r, "filtered_lrelu", "ref_cpu_grad", f"{name}, {what}")
        checked += 1
    assert checked >= 3


# Row widths around the CPU plugin's vector blocks (16 and 64 floats, 8 and 32 doubles) and
# their tails, with the SG3 layers' factors and 12 / 24-tap filters.
WIDE = [
    (2, 2, 150, "1d-12", "1d-12"),
    (4, 2, 37, "1d-24", "1d-12"),
    (2, 1, 70, "1d-12", "none"),
    (1, 2, 129, "none", "2d-6x6"),
]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("up, down, width, fu_k, fd_k", WIDE)
def test_cpu_matches_reference_on_wide_rows(cpu_plugin, up, down, width, fu_k, fd_k, dtype):
    fu, fd = filt(fu_k, 31), filt(fd_k, 41)
    x = randn([1, 2, 12, width], seed=51, dtype=dtype) * 3
    kw = dict(up=up, down=down, padding=[3, 2, 8, 9], clamp=0.4, gain=SQRT2, slope=0.2)
    (y_ref, *g_ref), (y_cpu, *g_cpu) = run_both(x, randn([2], seed=52, dtype=dtype), fu, fd, kw, seed=53)
    what = f"width {width}, up {up}, down {down}"
    assert y_cpu.shape[-1] >= 32  # past the vector blocks
    assert_close(y_cpu, y_ref, "filtered_lrelu", "ref_cpu", what)
    for name, g_c, g_r in zip(["dx", "db"], g_cpu, g_ref):
        assert_close(g_c, g_r, "filtered_lrelu", "ref_cpu_grad", f"{name}, {what}")


row_isa = ops_helpers.row_isa


def test_cpu_fir_variants_give_the_same_bits(cpu_plugin, row_isa):
    """Each vector width of the FIR loops (AVX-512, AVX2, baseline: each CPU runs its widest) computes
    the same bits, values and gradients; a width this CPU lacks is refused."""
    results = {}
    for isa in ops_helpers.each_row_isa(row_isa):
        results[isa] = []
        for up, down, width, fu_k, fd_k in WIDE:
            fu, fd = filt(fu_k, 31), filt(fd_k, 41)
            x = randn([1, 2, 12, width], seed=51) * 3
            kw = dict(up=up, down=down, padding=[3, 2, 8, 9], clamp=0.4, gain=SQRT2, slope=0.2)
            results[isa].append(run_both(x, randn([2], seed=52), fu, fd, kw, seed=53)[1])
    assert "base" in results
    for isa, runs in results.items():
        for got, want in zip(runs, results["base"]):
            for g, w in zip(got, want):
                assert torch.equal(g, w), isa
    with pytest.raises(RuntimeError, match="expected auto, avx512, avx2 or base"):
        row_isa("sse9")


def test_stylegen_cpu_isa_chooses_the_variant(cpu_plugin, row_isa):
    import types

    from stylegen import cuda_ops

    cuda_ops._cpu_setting(cpu_plugin, "STYLEGEN_CPU_ISA", " BASE ")
    assert row_isa("auto") in ("base", "avx2", "avx512")  # auto: back to the widest

    def refuse(name):
        raise RuntimeError("cpu isa: this CPU has no avx512 (widest: avx2)\nat ops_cpu.cpp")

    with pytest.raises(
        ValueError, match=r"^STYLEGEN_CPU_ISA=avx512: cpu isa: this CPU has no avx512 \(widest: avx2\)$"
    ):
        cuda_ops._cpu_setting(types.SimpleNamespace(set_row_isa=refuse), "STYLEGEN_CPU_ISA", "avx512")


def test_cpu_clamp_and_lrelu_are_active_in_the_grid(cpu_plugin):
    # The grid would prove little if no value were clamped or negative: check one cell does both.
    fu, fd = filt("1d-4", 30), filt("1d-3", 40)
    x = randn([2, 3, 9, 7], seed=50) * 4
    pre = filtered_lrelu(x, fu, None, up=2, padding=[2, 1, 3, 0], gain=1.0, slope=1.0, impl="cpu")
    assert (pre < 0).any() and (pre.abs() > 0.5).any()
    y = filtered_lrelu(x, fu, fd, up=2, down=2, padding=[2, 1, 3, 0], clamp=0.5, impl="cpu")
    assert_close(
        y,
        filtered_lrelu(x, fu, fd, up=2, down=2, padding=[2, 1, 3, 0], clamp=0.5, impl="ref"),
        "filtered_lrelu",
        "ref_cpu",
    )


@pytest.mark.parametrize("config", range(len(GRAD_CONFIGS)))
def test_cpu_gradcheck(cpu_plugin, config):
    kw = GRAD_CONFIGS[config]
    x = randn([1, 2, 4, 3], seed=10 + config).requires_grad_(True)
    b = randn([2], seed=20 + config).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: filtered_lrelu(x, b=b, impl="cpu", **kw), (x, b), **GRADCHECK)


def test_cpu_parallel_bands_and_empty_batch(cpu_plugin):
    # Enough planes and rows that at::parallel_for splits the tasks over 2 threads.
    torch.set_num_threads(2)  # the one_thread fixture restores the count afterwards
    fu, fd = filt("1d-12", 1), filt("1d-12", 2)
    x, b = randn([2, 8, 30, 20], seed=3, dtype=F32), randn([8], seed=4, dtype=F32)
    kw = dict(up=2, down=2, padding=[9, 8, 9, 8], clamp=256.0)
    y_ref = filtered_lrelu(x, fu, fd, b, impl="ref", **kw)
    assert_close(filtered_lrelu(x, fu, fd, b, impl="cpu", **kw), y_ref, "filtered_lrelu", "ref_cpu")
    assert filtered_lrelu(x[:0], fu, fd, b, impl="cpu", **kw).shape == (0, *y_ref.shape[1:])
    assert filtered_lrelu(x[:, :0], fu, fd, b[:0], impl="cpu", **kw).shape == (2, 0, *y_ref.shape[2:])


def test_cpu_plugin_rejects_what_it_cannot_run(cpu_plugin):
    x, f = torch.zeros([1, 2, 4, 4]), torch.ones([1])
    args = (1, 1, 0, 0, 0, 0, 1.0, 0.2, -1.0, False)
    with pytest.raises(RuntimeError, match="x must be 4-D"):
        cpu_plugin.filtered_lrelu(x[0], f, f, torch.zeros([0]), *args)
    with pytest.raises(RuntimeError, match="fu must be Float for x of type Float, got Double"):
        cpu_plugin.filtered_lrelu(x, f.double(), f, torch.zeros([0]), *args)
    with pytest.raises(RuntimeError, match="b must be 1-D of size x.size\\(1\\) = 2"):
        cpu_plugin.filtered_lrelu(x, f, f, torch.zeros([3]), *args)
    with pytest.raises(RuntimeError, match="output would be empty"):
        cpu_plugin.filtered_lrelu(x, torch.ones([6]), f, torch.zeros([0]), *args)


# ------------------------------------------------------------------------------------------------
# CUDA plugin vs CPU plugin (GPU machines only)


@needs_cuda
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
@pytest.mark.parametrize("dtype", [torch.float16, F32, F64], ids=["f16", "f32", "f64"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_vs_cpu(cpu_plugin, variant, dtype, channels_last):
    plugin_or_skip("cuda")
    fu_k, fd_k, pad, flip, clamp, gain, slope, bias = VARIANTS[variant]
    fu, fd = filt(fu_k, 30 + variant), filt(fd_k, 40 + variant)
    kw = dict(up=2, down=2, padding=pad, flip_filter=flip, clamp=clamp, gain=gain, slope=slope)
    x = randn([2, 4, 11, 9], seed=80 + variant, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = randn([4], seed=90 + variant, dtype=dtype) if bias else None
    # The CPU plugin has no float16: its float32 result on the same (rounded) inputs is the oracle.
    cdt = F32 if dtype == torch.float16 else dtype
    xc, xg = x.to(cdt).detach().requires_grad_(True), x.cuda().detach().requires_grad_(True)
    bc = None if b is None else b.to(cdt).detach().requires_grad_(True)
    bg = None if b is None else b.cuda().detach().requires_grad_(True)
    cuda = lambda f: None if f is None else f.cuda()  # noqa: E731
    y_cpu = filtered_lrelu(xc, fu, fd, bc, impl="cpu", **kw)
    y_gpu = filtered_lrelu(xg, cuda(fu), cuda(fd), bg, impl="cuda", **kw)
    assert y_gpu.dtype == dtype
    assert_close(y_gpu.cpu().to(cdt), y_cpu, "filtered_lrelu", "cpu_cuda", dtype=dtype)
    w = randn(y_cpu.shape, seed=95, dtype=dtype)
    g_cpu = grads(y_cpu, [xc] if bc is None else [xc, bc], w.to(cdt))
    g_gpu = grads(y_gpu, [xg] if bg is None else [xg, bg], w.cuda())
    for gc, gg in zip(g_cpu, g_gpu):
        assert_close(gg.cpu().to(cdt), gc, "filtered_lrelu", "cpu_cuda", dtype=dtype)


# ------------------------------------------------------------------------------------------------
# impl selection


def test_auto_runs_the_cpu_plugin_and_stylegen_ops_stands_for_it(cpu_plugin, monkeypatch):
    x, fu = randn([1, 2, 3, 3], seed=8), torch.tensor([1.0, 2.0])
    want_cpu = filtered_lrelu(x, fu, up=2, impl="cpu")
    want_ref = filtered_lrelu(x, fu, up=2, impl="ref")
    for env, want in [("auto", want_cpu), ("", want_cpu), ("cpu", want_cpu), ("ref", want_ref)]:
        monkeypatch.setenv("STYLEGEN_OPS", env)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = filtered_lrelu(x, fu, up=2)
        assert torch.equal(got, want), env
    monkeypatch.setenv("STYLEGEN_OPS", "cuda")
    with pytest.raises(ValueError, match="impl='cuda' cannot run a tensor on device 'cpu'"):
        filtered_lrelu(x)
    monkeypatch.setenv("STYLEGEN_OPS", "fast")
    with pytest.raises(ValueError, match="STYLEGEN_OPS='fast'"):
        filtered_lrelu(x)


def test_auto_falls_back_to_the_reference_once_warned_when_the_plugin_cannot_build(fake_build):
    x, fu = randn([1, 2, 3, 3], seed=8), torch.tensor([1.0, 2.0])
    want = filtered_lrelu(x, fu, up=2, impl="ref")
    with pytest.warns(OpsWarning, match="cpu plugin unavailable.*no compiler"):
        got = filtered_lrelu(x, fu, up=2)
    assert torch.equal(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(filtered_lrelu(x, fu, up=2), want)  # warned once only
    with pytest.raises(RuntimeError, match="impl='cpu' requested but the plugin is unavailable: no compiler"):
        filtered_lrelu(x, fu, up=2, impl="cpu")


def test_explicit_impls_refuse_what_they_cannot_run():
    with pytest.raises(TypeError, match="impl='cpu' does not support dtype torch.float16"):
        filtered_lrelu(img([[1.0]], torch.float16), impl="cpu")
    with pytest.raises(ValueError, match="impl='cuda' cannot run a tensor on device 'cpu'"):
        filtered_lrelu(img([[1.0]]), impl="cuda")
