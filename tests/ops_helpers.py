"""Shared pieces of the ops tests: the plugin fixtures (real and faked), the CUDA skip mark, comparisons.

Bind the fixtures in a test module (`cpu_plugin = ops_helpers.cpu_plugin`): pytest puts tests/ on sys.path;
conftest.py belongs to the whole test suite and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import pytest
import torch

import stylegen.cuda_ops as cuda_ops
from stylegen.cuda_ops import PluginUnavailable, load_plugin
from stylegen.ops import _dispatch
from stylegen.ops._dispatch import require_ext

from tolerances import tol

# Tests that need a GPU: marked `cuda` (see pytest.ini) and skipped where there is none.
_skip_no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def needs_cuda(obj):
    """Decorator for a test function or class that runs only with a CUDA device."""
    return pytest.mark.cuda(_skip_no_cuda(obj))


def plugin_or_skip(kind: str) -> ModuleType:
    """The built plugin; skip naming the reason, or fail when STYLEGEN_REQUIRE_EXT is set (CI)."""
    try:
        return load_plugin(kind)
    except PluginUnavailable as e:
        if kind == "cpu" and require_ext():
            pytest.fail(f"STYLEGEN_REQUIRE_EXT is set but the cpu plugin is unavailable: {e}")
        pytest.skip(f"{kind} plugin unavailable: {e}")


@pytest.fixture(scope="session")
def cpu_plugin() -> ModuleType:
    return plugin_or_skip("cpu")


@pytest.fixture
def row_isa(cpu_plugin):
    """The CPU plugin's vector-width setter (`set_row_isa`: the FIR loops of filtered_lrelu and
    the Winograd transforms); the widest variant is restored afterwards."""
    yield cpu_plugin.set_row_isa
    cpu_plugin.set_row_isa("auto")


def each_row_isa(row_isa):
    """Set each vector width in turn (base, avx2, avx512), yielding the names this CPU has;
    a width it lacks must be refused as such."""
    for isa in ("base", "avx2", "avx512"):
        try:
            assert row_isa(isa) == isa
        except RuntimeError as e:
            assert f"this CPU has no {isa}" in str(e)
            continue
        yield isa


@pytest.fixture(params=["torch", "plugin"])
def cpu_gemm(request, cpu_plugin):
    """Each GEMM of the CPU plugin's matrix products in turn (`set_cpu_gemm`: torch's BLAS, the
    plugin's own), yielding the name set; auto is restored afterwards. On a CPU without AVX2 and
    FMA the plugin's is refused as such, and torch's runs instead."""
    try:
        name = cpu_plugin.set_cpu_gemm(request.param)
    except RuntimeError as e:
        assert "needs AVX2 and FMA" in str(e)
        name = cpu_plugin.set_cpu_gemm("torch")
    yield name
    cpu_plugin.set_cpu_gemm("auto")


@pytest.fixture(scope="session")
def cuda_plugin() -> ModuleType:
    """The CUDA plugin; use with @needs_cuda (the skip names the build failure otherwise)."""
    return plugin_or_skip("cuda")


@dataclass
class FakeBuild:
    """What `fake_build` makes the plugin builds return: a module, or an exception to raise."""

    outcomes: dict = field(default_factory=dict)  # kind -> ModuleType | Exception (default: 'no compiler')
    calls: list = field(default_factory=list)  # the kind of every build asked for, in order
    verbose: list = field(default_factory=list)  # the verbose flag of each of those builds


@pytest.fixture
def fake_build(monkeypatch) -> FakeBuild:
    """Replaces cuda_ops._build; set `.outcomes[kind]`; unset kinds fail with 'no compiler'.

    Drops the cached build outcomes first and puts them back afterwards (after `forget()`), so
    the rest of the session keeps its real plugins without a new ninja run.
    """
    fake = FakeBuild()

    def build(kind: str, verbose: bool) -> ModuleType:
        fake.calls.append(kind)
        fake.verbose.append(verbose)
        result = fake.outcomes.get(kind, PluginUnavailable("no compiler"))
        if isinstance(result, BaseException):
            raise result
        return result

    saved = dict(cuda_ops._results)
    cuda_ops.forget()
    monkeypatch.setattr(cuda_ops, "_build", build)
    monkeypatch.setattr(_dispatch, "_warned", set())
    monkeypatch.delenv("STYLEGEN_OPS", raising=False)
    monkeypatch.delenv("STYLEGEN_REQUIRE_EXT", raising=False)
    yield fake
    cuda_ops.forget()
    cuda_ops._results.update(saved)


@pytest.fixture
def fake_gpus(monkeypatch):
    """fake_gpus([(9, 0), ...], shipped=('sm_80', ...)): torch.cuda reports these GPUs (none: []).

    Only the queries the cache key and the doctor make; nothing can run on them.
    """

    def set_gpus(caps: list[tuple[int, int]], shipped: tuple[str, ...] = ("sm_80", "sm_86", "sm_90")) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(caps))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(caps))
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: caps[i or 0])
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"Fake GPU {caps[i or 0]}")
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(shipped))

    return set_gpus


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread.

    The ops tests use tiny tensors, which gain nothing from threads; on a shared 2-core machine
    the thread handoff alone cost ~80 ms per conv2d. Tests of the plugins' parallel loops set
    their own thread count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["ref", "cpu"])
def impl(request) -> str:
    """Runs a test once per CPU implementation ('cpu' only where the plugin builds)."""
    if request.param == "cpu":
        request.getfixturevalue("cpu_plugin")
    return request.param


def assert_close(actual, expected, op: str, kind: str, msg: str = "", dtype=None) -> None:
    """assert_close with the tolerance table's entry for (op, kind, dtype or actual.dtype)."""
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    tols = tol(op, kind, dtype or actual.dtype)
    torch.testing.assert_close(actual, expected, **tols, msg=_msg(msg))


def _msg(extra: str):
    if not extra:
        return None
    return lambda default: f"{default}\n{extra}"


def grads(outputs, inputs, weights, create_graph=False) -> list[torch.Tensor]:
    """d/d(inputs) of sum(outputs * weights): the backward of a random projection.

    Inputs that do not reach the outputs get zeros, so piecewise-linear second derivatives
    compare as zeros.
    """
    if isinstance(outputs, torch.Tensor):
        outputs, weights = [outputs], [weights]
    loss = sum((o * w).sum() for o, w in zip(outputs, weights))
    if not loss.requires_grad:  # e.g. the derivative of a piecewise-linear op's backward
        return [torch.zeros_like(i) for i in inputs]
    g = torch.autograd.grad(loss, inputs, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(i) if gi is None else gi for gi, i in zip(g, inputs)]
