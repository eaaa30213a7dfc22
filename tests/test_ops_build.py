"""Plugin build behaviour: impl selection and fallback, the build cache, missing toolchains."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import stylegen.cuda_ops as cuda_ops
from stylegen.ops import bias_act, upfirdn2d
from stylegen.ops._dispatch import OpsWarning

import ops_helpers

# Fixtures, bound by name so pytest finds them here (conftest.py is the suite's, not the ops').
cpu_plugin = ops_helpers.cpu_plugin
fake_build = ops_helpers.fake_build
fake_gpus = ops_helpers.fake_gpus

F64 = torch.float64


def inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn([2, 3, 5, 4], generator=g)
    return x, torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.randn([3], generator=g)


def run_both(impl: str):
    x, f, b = inputs()
    return upfirdn2d(x, f, up=2, padding=2, impl=impl), bias_act(x, b, act="lrelu", clamp=1.0, impl=impl)


@pytest.fixture
def no_plugin(fake_build):
    """Every plugin build fails with 'no compiler'; yields the list of kinds _build was asked for."""
    return fake_build.calls


# ------------------------------------------------------------------------------------------------
# impl selection and the fallback


def test_auto_falls_back_to_ref_and_warns_once(no_plugin):
    expected = run_both("ref")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")  # the once-only must come from stylegen, not the filter
        for _ in range(3):
            for got, want in zip(run_both("auto"), expected):
                assert torch.equal(got, want)
    ops = [w for w in record if issubclass(w.category, OpsWarning)]
    assert len(ops) == 1, [str(w.message) for w in ops]
    assert "no compiler" in str(ops[0].message) and "cpu" in str(ops[0].message)
    assert no_plugin == ["cpu"]  # one failed build, remembered: not retried per call


def test_require_ext_turns_the_fallback_into_an_error(no_plugin, monkeypatch):
    monkeypatch.setenv("STYLEGEN_REQUIRE_EXT", "1")
    x, f, b = inputs()
    with pytest.raises(RuntimeError, match="STYLEGEN_REQUIRE_EXT.*no compiler"):
        upfirdn2d(x, f, impl="auto")
    with pytest.raises(RuntimeError, match="no compiler"):
        bias_act(x, b, impl="auto")
    # "0" and "" mean off.
    for off in ["0", ""]:
        monkeypatch.setenv("STYLEGEN_REQUIRE_EXT", off)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OpsWarning)
            run_both("auto")


def test_explicit_impl_that_cannot_be_met_raises(no_plugin):
    x, f, b = inputs()
    with pytest.raises(RuntimeError, match="impl='cpu'.*no compiler"):
        upfirdn2d(x, f, impl="cpu")
    with pytest.raises(RuntimeError, match="impl='cpu'.*no compiler"):
        bias_act(x, b, impl="cpu")
    with pytest.raises(ValueError, match="impl='cuda'.*device 'cpu'"):
        upfirdn2d(x, f, impl="cuda")
    with pytest.raises(ValueError, match="impl='cuda'.*device 'cpu'"):
        bias_act(x, b, impl="cuda")
    for bad in ["gpu", "", "CPU"]:
        with pytest.raises(ValueError, match="impl="):
            upfirdn2d(x, f, impl=bad)
        with pytest.raises(ValueError, match="impl="):
            bias_act(x, b, impl=bad)
    assert no_plugin == ["cpu"]


def test_stylegen_ops_env(no_plugin, monkeypatch):
    expected = run_both("ref")
    monkeypatch.setenv("STYLEGEN_OPS", "ref")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: ref was asked for
        for got, want in zip(run_both("auto"), expected):
            assert torch.equal(got, want)
    assert no_plugin == []  # no plugin load at all
    monkeypatch.setenv("STYLEGEN_OPS", "cpu")
    with pytest.raises(RuntimeError, match="no compiler"):
        run_both("auto")
    monkeypatch.setenv("STYLEGEN_OPS", "fast")
    with pytest.raises(ValueError, match="STYLEGEN_OPS='fast'"):
        run_both("auto")
    # An explicit impl wins over the environment.
    assert run_both("ref")[0].shape == expected[0].shape


def test_load_plugin_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown plugin kind"):
        cuda_ops.load_plugin("metal")


# ------------------------------------------------------------------------------------------------
# The build cache


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    # cwd outside the repository: the child imports the installed stylegen, like the parent.
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_second_load_reuses_the_build(cpu_plugin, tmp_path):
    assert cuda_ops.load_plugin("cpu") is cpu_plugin
    assert cuda_ops.loaded("cpu") is cpu_plugin
    so = Path(cpu_plugin.__file__)
    assert so.parent.name == cuda_ops.plugin_name("cpu")
    mtime = so.stat().st_mtime_ns
    # A real second process with the same TORCH_EXTENSIONS_DIR loads the cached binary.
    r = run_python(
        """
        from stylegen.cuda_ops import load_plugin
        print(load_plugin("cpu").__file__)
        """,
        subprocess_env(),
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(so)
    assert so.stat().st_mtime_ns == mtime, "the second process rebuilt the plugin"


@pytest.fixture
def source_copy(tmp_path, monkeypatch) -> Path:
    """cuda_ops' native sources copied to tmp_path, which becomes cuda_ops.ROOT."""
    root = tmp_path / "cuda_ops"
    shutil.copytree(cuda_ops.ROOT / "include", root / "include")
    for sources in cuda_ops.SOURCES.values():
        for s in sources:
            (root / s).parent.mkdir(parents=True, exist_ok=True)
            src = cuda_ops.ROOT / s
            (root / s).write_bytes(src.read_bytes() if src.exists() else b"// placeholder\n")
    monkeypatch.setattr(cuda_ops, "ROOT", root)
    monkeypatch.delenv("STYLEGEN_CUDA_STRICT", raising=False)
    return root


def test_fingerprint_tracks_sources_headers_and_flags(source_copy, monkeypatch):
    fp = cuda_ops.fingerprint("cpu")
    assert cuda_ops.plugin_name("cpu") == f"stylegen_cpu_{fp}"
    assert cuda_ops.fingerprint("cpu") == fp  # deterministic
    header = source_copy / "include" / "sg_hd.h"
    original = header.read_bytes()
    header.write_bytes(original + b"\n// changed\n")
    assert cuda_ops.fingerprint("cpu") != fp
    header.write_bytes(original)
    assert cuda_ops.fingerprint("cpu") == fp
    (source_copy / "include" / "new_core.h").write_text("#pragma once\n")  # a new header counts too
    assert cuda_ops.fingerprint("cpu") != fp
    (source_copy / "include" / "new_core.h").unlink()
    src = source_copy / cuda_ops.SOURCES["cpu"][0]
    src.write_bytes(src.read_bytes() + b"\n// changed\n")
    assert cuda_ops.fingerprint("cpu") != fp
    src.write_bytes(src.read_bytes()[: -len(b"\n// changed\n")])
    assert cuda_ops.fingerprint("cpu") == fp
    monkeypatch.setattr(cuda_ops, "CPU_CFLAGS", cuda_ops.CPU_CFLAGS + ["-DSTYLEGEN_TEST_FLAG"])
    fp_flags = cuda_ops.fingerprint("cpu")
    assert fp_flags != fp
    assert cuda_ops.plugin_name("cpu") == f"stylegen_cpu_{fp_flags}"


def test_cuda_fingerprint_tracks_strict_and_arch(source_copy, monkeypatch):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    fp = cuda_ops.fingerprint("cuda")
    assert "--fmad=false" not in cuda_ops.build_flags("cuda")[1]
    monkeypatch.setenv("STYLEGEN_CUDA_STRICT", "1")
    assert "--fmad=false" in cuda_ops.build_flags("cuda")[1]
    fp_strict = cuda_ops.fingerprint("cuda")
    assert fp_strict != fp
    assert cuda_ops.plugin_name("cuda") == f"stylegen_cuda_{fp_strict}"
    monkeypatch.setenv("STYLEGEN_CUDA_STRICT", "0")
    assert cuda_ops.fingerprint("cuda") == fp
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6")
    assert cuda_ops.fingerprint("cuda") != fp
    # The CPU plugin does not depend on either.
    assert cuda_ops.fingerprint("cpu") == cuda_ops.fingerprint("cpu")


def test_cuda_arch_default_is_hashed_as_applied(source_copy, fake_gpus, monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    fake_gpus([])  # no GPU: the compile-check default
    assert cuda_ops.cuda_arch_list() == cuda_ops.DEFAULT_CUDA_ARCH == "9.0"
    unset = cuda_ops.plugin_name("cuda")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert cuda_ops.plugin_name("cuda") == unset  # the same binary: the same cache entry
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")  # empty means unset, to torch and to us
    assert cuda_ops.plugin_name("cuda") == unset
    # With a GPU, torch's default is the GPU's own architecture plus PTX.
    fake_gpus([(8, 6)])
    for unset_value in ["", "native"]:
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", unset_value)
        assert cuda_ops.cuda_arch_list() == "8.6+PTX"
        default = cuda_ops.plugin_name("cuda")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6+PTX")
    assert cuda_ops.plugin_name("cuda") == default
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6")
    assert cuda_ops.plugin_name("cuda") != default


def test_cuda_arch_default_follows_the_visible_gpus(fake_gpus, monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    fake_gpus([(9, 0), (8, 6), (9, 0)])  # every distinct architecture, ascending, PTX on the newest
    assert cuda_ops.cuda_arch_list() == "8.6;9.0+PTX"
    fake_gpus([(12, 0)], shipped=("sm_80", "sm_90", "sm_90a"))  # newer than this torch: clamped
    assert cuda_ops.cuda_arch_list() == "9.0+PTX"
    fake_gpus([(10, 0), (9, 0)], shipped=("sm_90", "sm_100"))  # numeric order, not string order
    assert cuda_ops.cuda_arch_list() == "9.0;10.0+PTX"
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "7.5;8.0")  # an explicit list is used as given
    assert cuda_ops.cuda_arch_list() == "7.5;8.0"


def test_cuda_plugin_name_tracks_arch_list_and_gpu(source_copy, fake_gpus, monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    names = {}
    for caps in [[], [(8, 6)], [(9, 0)], [(8, 6), (9, 0)]]:  # defaults: 9.0, 8.6+PTX, 9.0+PTX, 8.6;9.0+PTX
        fake_gpus(caps)
        names[f"default {caps}"] = cuda_ops.plugin_name("cuda")
    fake_gpus([(9, 0)])
    for archs in ["8.6", "9.0", "8.6;9.0", "9.0+PTX;8.6"]:
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", archs)
        names[f"{archs} on 9.0"] = cuda_ops.plugin_name("cuda")
    # The same explicit list on another GPU (or none) is another key: a shared cache never hands
    # one GPU the binary built (and loaded without a compiler) on another.
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6;9.0")
    for caps in [[], [(8, 6)]]:
        fake_gpus(caps)
        names[f"8.6;9.0 on {caps}"] = cuda_ops.plugin_name("cuda")
    assert len(set(names.values())) == len(names), names
    # A second GPU of a kind already seen changes nothing: the key holds the distinct capabilities.
    fake_gpus([(9, 0), (9, 0)])
    assert cuda_ops.plugin_name("cuda") == names["8.6;9.0 on 9.0"]
    # The CPU plugin depends on neither.
    cpu = cuda_ops.plugin_name("cpu")
    fake_gpus([])
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    assert cuda_ops.plugin_name("cpu") == cpu


def test_cuda_build_compiles_for_the_hashed_arch_list(source_copy, fake_gpus, monkeypatch):
    """_build names the plugin before it sets TORCH_CUDA_ARCH_LIST for torch: both must agree."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")  # so that monkeypatch restores what _configure sets
    monkeypatch.setenv("CUDA_HOME", "/opt/fake-cuda")
    monkeypatch.setattr(cuda_ops, "find_cuda_home", lambda: Path("/opt/fake-cuda"))
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", cpp_extension.CUDA_HOME)  # restored afterwards
    for caps, archs in [([], "9.0"), ([(8, 6), (8, 9)], "8.6;8.9+PTX")]:
        fake_gpus(caps)
        monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
        before = cuda_ops.plugin_name("cuda")
        cuda_ops._configure_cuda_env()
        assert os.environ["TORCH_CUDA_ARCH_LIST"] == archs
        assert cuda_ops.plugin_name("cuda") == before  # a later process with the list set finds it


# ------------------------------------------------------------------------------------------------
# Missing toolchains, for real: a child process whose PATH lacks the tool

TOOLCHAIN_PROBE = """
import warnings, torch
from stylegen.cuda_ops import PluginUnavailable, load_plugin
from stylegen.ops import upfirdn2d
try:
    load_plugin("cpu")
    print("BUILT")
except PluginUnavailable as e:
    print("REASON", e)
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    upfirdn2d(torch.ones([1, 1, 4, 4]), None, up=2)  # impl='auto': the reference, with a warning
print("WARNINGS", len(record), *[str(w.message) for w in record])
"""


def toolchain_case(tmp_path: Path, case: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = subprocess_env(PATH=str(bin_dir), TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"))
    for var in ["STYLEGEN_REQUIRE_EXT", "STYLEGEN_OPS"]:
        env.pop(var, None)
    if case == "no_compiler":
        ninja = shutil.which("ninja")
        if ninja is None:
            pytest.skip("ninja is not installed here, so a no-compiler case cannot be set up")
        (bin_dir / "ninja").symlink_to(ninja)  # ninja present, no c++ / g++ on PATH
        env["CXX"] = "/nonexistent/c++"
    else:
        env.pop("CXX", None)  # nothing at all on PATH
    return run_python(TOOLCHAIN_PROBE, env, tmp_path)


def test_missing_compiler_is_named(tmp_path):
    r = toolchain_case(tmp_path, "no_compiler")
    assert r.returncode == 0, r.stderr
    reason = next(line for line in r.stdout.splitlines() if line.startswith(("REASON", "BUILT")))
    assert reason.startswith("REASON"), r.stdout
    assert "compiler" in reason and "/nonexistent/c++" in reason, reason
    warned = next(line for line in r.stdout.splitlines() if line.startswith("WARNINGS"))
    assert warned.startswith("WARNINGS 1 ") and "/nonexistent/c++" in warned, warned
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").rglob("*.so"))


def test_cached_plugin_loads_without_a_toolchain(cpu_plugin, tmp_path):
    # The same TORCH_EXTENSIONS_DIR as this process (where cpu_plugin was built), but an empty PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = subprocess_env(PATH=str(bin_dir), CXX="/nonexistent/c++")
    for var in ["STYLEGEN_REQUIRE_EXT", "STYLEGEN_OPS"]:
        env.pop(var, None)
    r = run_python(TOOLCHAIN_PROBE, env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "BUILT" in r.stdout.splitlines() and "WARNINGS 0" in r.stdout, r.stdout


def test_missing_ninja_is_named(tmp_path):
    r = toolchain_case(tmp_path, "no_ninja")
    assert r.returncode == 0, r.stderr
    reason = next(line for line in r.stdout.splitlines() if line.startswith(("REASON", "BUILT")))
    assert reason.startswith("REASON") and "ninja" in reason, r.stdout
