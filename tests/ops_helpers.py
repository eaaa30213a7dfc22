"""Shared pieces of the ops tests: the plugin fixtures, the CUDA skip mark, comparisons.

Bind the fixtures in a test module (`cpu_plugin = ops_helpers.cpu_plugin`): pytest puts tests/ on sys.path;
conftest.py belongs to the whole test suite and is left alone.
"""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from stylegen.cuda_ops import PluginUnavailable, load_plugin
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
