"""The CPU plugin's matrix products (`matmul`, the Winograd GEMMs): torch's BLAS or the plugin's own
AVX2/FMA GEMM (cuda_ops/cpu/gemm_cpu.cpp), and which of them runs.

Oracle: the product in float64; any float32 sum of K products, in any order, with or without FMA,
lies within K * 2^-24 of the sum of their magnitudes (Higham, "Accuracy and Stability of Numerical
Algorithms", 3.1), so the bound holds on every CPU and BLAS path.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import torch

import stylegen.cuda_ops as cuda_ops
from stylegen.networks import sg3_winograd

import ops_helpers

cpu_plugin = ops_helpers.cpu_plugin
cpu_gemm = ops_helpers.cpu_gemm
fake_build = ops_helpers.fake_build

# (B, A's batch (1: one A for all), M, K, N): edges of the 6 x 16 tile in M and N, K past one
# 256-deep block and not a multiple of it, one element, and a 1x1 layer's wide N.
SHAPES = [
    (1, 1, 1, 1, 1),
    (3, 3, 7, 5, 9),
    (2, 1, 13, 300, 37),
    (36, 36, 50, 260, 17),
    (2, 2, 6, 16, 16),
    (1, 1, 130, 513, 1025),
    (1, 1, 3, 2, 5000),
]


def _case(b, ba, m, k, n):
    g = torch.Generator().manual_seed(b * 100000 + m * 1000 + k + n)
    return torch.randn([ba, m, k], generator=g), torch.randn([b, k, n], generator=g)


@pytest.mark.parametrize("b, ba, m, k, n", SHAPES)
def test_products_match_float64(cpu_plugin, cpu_gemm, b, ba, m, k, n):
    a, bb = _case(b, ba, m, k, n)
    c = cpu_plugin.matmul(a, bb)
    assert c.shape == (b, m, n) and c.dtype == torch.float32
    want = a.double() @ bb.double()
    bound = (a.double().abs() @ bb.double().abs()) * k * 2.0**-24
    assert ((c.double() - want).abs() <= bound).all()


def test_empty_products(cpu_plugin, cpu_gemm):
    assert torch.equal(cpu_plugin.matmul(torch.ones([1, 3, 0]), torch.ones([2, 0, 4])), torch.zeros([2, 3, 4]))
    assert cpu_plugin.matmul(torch.ones([1, 0, 5]), torch.ones([2, 5, 4])).shape == (2, 0, 4)
    assert cpu_plugin.matmul(torch.ones([1, 3, 5]), torch.ones([2, 5, 0])).shape == (2, 3, 0)


def test_the_plugin_gemm_gives_the_same_bits_on_any_thread_count(cpu_plugin, cpu_gemm):
    """Each element is one sum over k in order, whatever the blocking of columns among threads."""
    threads = torch.get_num_threads()
    a, b = _case(1, 1, 70, 600, 3000)
    try:
        torch.set_num_threads(1)
        one = cpu_plugin.matmul(a, b)
        torch.set_num_threads(2)
        two = cpu_plugin.matmul(a, b)
    finally:
        torch.set_num_threads(threads)
    if cpu_gemm == "plugin":
        assert torch.equal(one, two)
    assert (one - two).abs().max() <= 1e-3  # torch's BLAS: the same products, maybe other rounding


def test_kept_packing_gives_the_same_bits(cpu_plugin, cpu_gemm):
    """The Winograd conv with its weights packed once (PackedWeights, as frozen layers keep them)
    and packed on the fly; a packing of other weights is refused."""
    g = torch.Generator().manual_seed(3)
    x, wt = torch.randn([1, 20, 11, 9], generator=g), torch.randn([13, 20, 3, 3], generator=g)
    s, d = torch.rand([1, 20], generator=g) + 0.5, torch.rand([1, 13], generator=g) + 0.5
    u = sg3_winograd.winograd_weights(wt)
    packed = sg3_winograd.PackedWeights(u)
    kept = sg3_winograd.conv3x3_full(cpu_plugin, x, u, s, d, u_packed=packed.get(cpu_plugin))
    assert torch.equal(kept, sg3_winograd.conv3x3_full(cpu_plugin, x, u, s, d))
    assert packed.get(cpu_plugin).numel() == (0 if cpu_gemm == "torch" else 36 * 18 * 20)  # 13 rows -> 18
    if cpu_gemm == "plugin":
        other = sg3_winograd.PackedWeights(sg3_winograd.winograd_weights(wt[:7])).get(cpu_plugin)
        with pytest.raises(RuntimeError, match=r"the packed factor does not fit a of shape \[36, 13, 20\]"):
            sg3_winograd.conv3x3_full(cpu_plugin, x, u, s, d, u_packed=other)


def test_packing_follows_the_gemm_in_use(cpu_plugin, cpu_gemm):
    packed = sg3_winograd.PackedWeights(torch.ones([36, 4, 4]))
    assert packed.get(cpu_plugin).numel() == (0 if cpu_gemm == "torch" else 36 * 6 * 4)
    cpu_plugin.set_cpu_gemm("torch")
    assert packed.get(cpu_plugin).numel() == 0  # torch's BLAS needs none


def _cpu_facts() -> tuple[str, set]:
    text = Path("/proc/cpuinfo").read_text()
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    return (vendor.group(1) if vendor else ""), set(flags.group(1).split() if flags else ())


def test_auto_takes_torch_on_intel_and_the_plugin_elsewhere(cpu_plugin):
    """MKL's fast kernels are assured on Intel's CPUs only; the plugin's needs AVX2 and FMA."""
    vendor, flags = _cpu_facts()
    want = "torch" if vendor == "GenuineIntel" or not {"avx2", "fma"} <= flags else "plugin"
    try:
        assert cpu_plugin.set_cpu_gemm("auto") == want
        assert cpu_plugin.cpu_gemm() == want
    finally:
        cpu_plugin.set_cpu_gemm("auto")


def test_bad_gemm_names_are_refused(cpu_plugin):
    try:
        with pytest.raises(RuntimeError, match="cpu gemm: expected auto, plugin or torch, got 'mkl'"):
            cpu_plugin.set_cpu_gemm("mkl")
        assert cpu_plugin.set_cpu_gemm("torch") == "torch"
    finally:
        cpu_plugin.set_cpu_gemm("auto")
    with pytest.raises(RuntimeError, match="cpu matmul: shapes"):
        cpu_plugin.matmul(torch.ones([1, 2, 3]), torch.ones([1, 4, 5]))
    with pytest.raises(RuntimeError, match="contiguous 3-D CPU float32"):
        cpu_plugin.matmul(torch.ones([1, 2, 3], dtype=torch.float64), torch.ones([1, 3, 5]))


def test_stylegen_cpu_gemm_names_the_variable(cpu_plugin):
    def refuse(name):
        raise RuntimeError("cpu gemm: expected auto, plugin or torch, got 'fast'\nmore")

    with pytest.raises(
        ValueError, match=r"^STYLEGEN_CPU_GEMM=fast: cpu gemm: expected auto, plugin or torch, got 'fast'$"
    ):
        cuda_ops._cpu_setting(types.SimpleNamespace(set_cpu_gemm=refuse), "STYLEGEN_CPU_GEMM", "fast")
    seen = []
    cuda_ops._cpu_setting(types.SimpleNamespace(set_cpu_gemm=seen.append), "STYLEGEN_CPU_GEMM", " Torch ")
    assert seen == ["torch"]


def test_the_cpu_plugin_is_loaded_with_the_variables_choices(fake_build, monkeypatch):
    seen = []
    fake_build.outcomes["cpu"] = types.SimpleNamespace(
        set_cpu_gemm=lambda name: seen.append(("gemm", name)), set_row_isa=lambda name: seen.append(("isa", name))
    )
    monkeypatch.setenv("STYLEGEN_CPU_GEMM", "plugin")
    monkeypatch.setenv("STYLEGEN_CPU_ISA", "avx2")
    cuda_ops.load_plugin("cpu")
    assert sorted(seen) == [("gemm", "plugin"), ("isa", "avx2")]
