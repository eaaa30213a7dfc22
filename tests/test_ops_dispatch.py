"""What impl='auto' runs: the warned fallbacks to the reference and the measured CPU rule.

The rule itself and the table behind it are in stylegen/ops/_dispatch.py's docstring.
"""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

from stylegen.ops import _dispatch, bias_act, setup_filter, upfirdn2d, upsample2d
from stylegen.ops._dispatch import CPU_REF_RULES, OpsWarning, cpu_prefers_ref, resolve

import ops_helpers

cpu_plugin = ops_helpers.cpu_plugin
fake_build = ops_helpers.fake_build
one_thread = ops_helpers.one_thread

pytestmark = pytest.mark.usefixtures("one_thread")

# By name: `stylegen.ops.bias_act` the attribute is the function, which hides the module.
bias_act_module = importlib.import_module("stylegen.ops.bias_act")
upfirdn2d_module = importlib.import_module("stylegen.ops.upfirdn2d")


@pytest.fixture
def fresh_warnings(monkeypatch):
    """No fallback warned about yet in this process, and no impl forced by the environment."""
    monkeypatch.setattr(_dispatch, "_warned", set())
    monkeypatch.delenv("STYLEGEN_OPS", raising=False)
    monkeypatch.delenv("STYLEGEN_REQUIRE_EXT", raising=False)


def run_ops(x: torch.Tensor, impl: str = "auto") -> list[torch.Tensor]:
    f = setup_filter([1, 3, 3, 1], device=x.device)
    b = torch.linspace(-1, 1, x.shape[1], device=x.device).to(x.dtype)
    return [upsample2d(x, f, impl=impl), upfirdn2d(x, f, down=2, impl=impl), bias_act(x, b, act="lrelu", impl=impl)]


def ops_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, OpsWarning)]


# ------------------------------------------------------------------------------------------------
# Fallbacks to the reference warn once, naming the reason


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_auto_warns_once_for_a_dtype_the_cpu_plugin_lacks(cpu_plugin, fresh_warnings, dtype):
    x = torch.randn([2, 3, 8, 8]).to(dtype)
    name = str(dtype).removeprefix("torch.")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")  # the once-only must come from stylegen, not the filter
        for _ in range(3):
            got = run_ops(x)
    assert ops_warnings(record) == [f"stylegen: cpu plugin does not compute {name}; using the reference ops"]
    for g, want in zip(got, run_ops(x, impl="ref")):
        assert g.dtype == dtype and torch.equal(g, want)  # the reference, bit for bit


def test_auto_warning_can_be_caught_with_pytest_warns(cpu_plugin, fresh_warnings):
    with pytest.warns(OpsWarning, match="cpu plugin does not compute bfloat16"):
        upfirdn2d(torch.ones([1, 1, 4, 4], dtype=torch.bfloat16), None, up=2)


def test_each_reason_warns_once(cpu_plugin, fresh_warnings):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            for dtype in [torch.bfloat16, torch.float16, torch.bfloat16]:
                run_ops(torch.zeros([1, 2, 4, 4], dtype=dtype))
    assert [m.split("compute ")[1].split(";")[0] for m in ops_warnings(record)] == ["bfloat16", "float16"]


def test_auto_warns_once_for_a_device_without_a_plugin(fresh_warnings):
    # 'meta' stands for mps, xla, ...: a device no plugin is built for (and present on every machine).
    x = torch.empty([2, 3, 8, 8], device="meta")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            shapes = [tuple(y.shape) for y in run_ops(x)]
    assert shapes == [(2, 3, 16, 16), (2, 3, 3, 3), (2, 3, 8, 8)]
    assert ops_warnings(record) == ["stylegen: no plugin for device 'meta'; using the reference ops"]


def test_explicit_or_env_ref_never_warns(fresh_warnings, monkeypatch):
    x = torch.zeros([1, 2, 4, 4], dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_ops(x, impl="ref")
        monkeypatch.setenv("STYLEGEN_OPS", "ref")
        run_ops(x)


def test_explicit_plugin_still_raises_for_what_it_cannot_run(cpu_plugin):
    with pytest.raises(TypeError, match="impl='cpu' does not support dtype torch.bfloat16"):
        upfirdn2d(torch.zeros([1, 1, 4, 4], dtype=torch.bfloat16), None, impl="cpu")
    with pytest.raises(ValueError, match="impl='cpu' cannot run a tensor on device 'meta'"):
        bias_act(torch.empty([2, 3], device="meta"), impl="cpu")


# ------------------------------------------------------------------------------------------------
# The CPU rule: deterministic, from the op, the size and whether autograd records the call


def test_rule_table():
    assert CPU_REF_RULES == {"bias_act": (False, 1 << 17)}
    assert cpu_prefers_ref("bias_act", (1 << 17) - 1, needs_grad=False)
    assert not cpu_prefers_ref("bias_act", 1 << 17, needs_grad=False)
    assert not cpu_prefers_ref("bias_act", 16, needs_grad=True)
    for numel in [1, 1 << 10, 1 << 24]:
        for needs_grad in [False, True]:
            assert not cpu_prefers_ref("upfirdn2d", numel, needs_grad)


def test_resolve_follows_the_rule(cpu_plugin, fresh_warnings):
    small, large = torch.zeros([8, 512]), torch.zeros([4, 512, 8, 8])  # 2**12, 2**17 elements
    assert resolve("auto", small, "bias_act", needs_grad=False) is None
    assert resolve("auto", small, "bias_act", needs_grad=True) is cpu_plugin
    assert resolve("auto", large, "bias_act", needs_grad=False) is cpu_plugin
    for needs_grad in [False, True]:
        assert resolve("auto", small[None, None], "upfirdn2d", needs_grad=needs_grad) is cpu_plugin
        # An explicit impl is never second-guessed.
        assert resolve("cpu", small, "bias_act", needs_grad=needs_grad) is cpu_plugin
        assert resolve("ref", large, "upfirdn2d", needs_grad=needs_grad) is None


@pytest.fixture
def resolve_calls(monkeypatch) -> list[tuple[str, bool]]:
    """Records (op, needs_grad) of every resolve() the ops make."""
    calls: list[tuple[str, bool]] = []

    def spy(impl, x, op, needs_grad=False):
        calls.append((op, needs_grad))
        return resolve(impl, x, op, needs_grad=needs_grad)

    monkeypatch.setattr(bias_act_module, "resolve", spy)
    monkeypatch.setattr(upfirdn2d_module, "resolve", spy)
    return calls


def test_ops_tell_resolve_whether_autograd_records(resolve_calls):
    x, b = torch.zeros([2, 3, 4, 4]), torch.zeros([3])
    xg, bg = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    f = torch.ones([2, 2], requires_grad=True)  # f is a constant (no gradient), whatever its flag
    bias_act(x, b)
    bias_act(xg, b)
    bias_act(x, bg)
    upfirdn2d(x, f)
    upfirdn2d(xg, f)
    with torch.no_grad():
        bias_act(xg, bg)
        upfirdn2d(xg, f)
    with torch.inference_mode():
        bias_act(xg, bg)
    assert resolve_calls == [
        ("bias_act", False),
        ("bias_act", True),
        ("bias_act", True),
        ("upfirdn2d", False),
        ("upfirdn2d", True),
        ("bias_act", False),
        ("upfirdn2d", False),
        ("bias_act", False),
    ]


@pytest.mark.parametrize("shape", [(8, 512), (4, 512, 8, 8)], ids=str)
def test_auto_equals_the_impl_it_picks(cpu_plugin, fresh_warnings, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    b = torch.randn([512], generator=torch.Generator().manual_seed(1))
    picked = "ref" if cpu_prefers_ref("bias_act", x.numel(), needs_grad=False) else "cpu"
    y = bias_act(x, b, act="lrelu", clamp=0.5, impl="auto")
    assert torch.equal(y, bias_act(x, b, act="lrelu", clamp=0.5, impl=picked))
    # With a gradient recorded, the plugin (both its forward and its backward).
    xg = x.clone().requires_grad_(True)
    y = bias_act(xg, b, act="lrelu", clamp=0.5, impl="auto")
    (g,) = torch.autograd.grad(y.sum(), [xg])
    xc = x.clone().requires_grad_(True)
    yc = bias_act(xc, b, act="lrelu", clamp=0.5, impl="cpu")
    (gc,) = torch.autograd.grad(yc.sum(), [xc])
    assert torch.equal(y, yc) and torch.equal(g, gc)


def test_no_grad_plugin_fast_path_matches_the_function(cpu_plugin):
    # Under no_grad the plugin is called without autograd.Function: same values, every layout.
    x = torch.randn([2, 4, 5, 6], generator=torch.Generator().manual_seed(2))
    b = torch.randn([4], generator=torch.Generator().manual_seed(3))
    for xx in [x, x.contiguous(memory_format=torch.channels_last), x.transpose(2, 3)]:
        for kw in [dict(act="lrelu", clamp=0.5), dict(act="tanh"), dict(act="linear")]:
            want = bias_act(xx.clone().requires_grad_(True), b, impl="cpu", **kw).detach()
            with torch.no_grad():
                got = bias_act(xx, b, impl="cpu", **kw)
            assert torch.equal(got, want), kw
    with torch.no_grad():
        assert bias_act(x, None, act="linear", impl="cpu") is x  # nothing to do: x itself, as ref


def test_require_ext_still_loads_the_plugin_where_the_rule_picks_ref(fake_build, monkeypatch):
    monkeypatch.setenv("STYLEGEN_REQUIRE_EXT", "1")
    small = torch.zeros([8, 512])
    assert cpu_prefers_ref("bias_act", small.numel(), needs_grad=False)
    with pytest.raises(RuntimeError, match="STYLEGEN_REQUIRE_EXT.*no compiler"):
        bias_act(small, act="lrelu")
    assert fake_build.calls == ["cpu"]
