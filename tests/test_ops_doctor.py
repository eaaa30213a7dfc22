"""The native ops doctor: `python -m stylegen.cuda_ops` and `stylegen doctor` (report, --verbose, exit status)."""

from __future__ import annotations

from types import ModuleType

import pytest
from click.testing import CliRunner

import stylegen.cuda_ops as cuda_ops
from stylegen.cli.main import main as cli
from stylegen.cuda_ops import PluginUnavailable, doctor

import ops_helpers

# Fixtures, bound by name so pytest finds them here (conftest.py is the suite's, not the ops').
cpu_plugin = ops_helpers.cpu_plugin
fake_build = ops_helpers.fake_build
fake_gpus = ops_helpers.fake_gpus


def stylegen_doctor(*args: str):
    return CliRunner().invoke(cli, ["doctor", *args], prog_name="stylegen")


def compile_error() -> PluginUnavailable:
    """A failed build as _build raises it: the reason, with the compiler's output as its cause."""
    try:
        raise RuntimeError("ops_cpu.cpp:12:5: error: expected ';' before 'return'")
    except RuntimeError as e:
        try:
            raise PluginUnavailable("building the cpu plugin failed (expected ';')") from e
        except PluginUnavailable as wrapped:
            return wrapped


def test_doctor_reports_a_working_cpu_plugin(cpu_plugin, capsys, monkeypatch):
    monkeypatch.delenv("STYLEGEN_CPU_GEMM", raising=False)
    lines = doctor.report(cuda=False)
    text = "\n".join(lines)
    for key in ["python:", "torch:", "ninja:", "C++ compiler:", "nvcc:", "CUDA_HOME:", "build cache:"]:
        assert key in text, text
    assert any(line.startswith("cpu plugin:") and "OK (cached build reused" in line for line in lines), text
    gemm = f"  cpu GEMM:   {cpu_plugin.cpu_gemm()} (auto: torch's BLAS on Intel CPUs, the plugin's own on others)"
    assert gemm in lines, text
    assert doctor.main(["--no-cuda"]) == 0
    out = capsys.readouterr().out
    assert "cuda plugin:  skipped" in out and out.splitlines()[-1] == "doctor: OK (cpu plugin works)", out


def test_doctor_names_the_failure(fake_build, capsys):
    assert doctor.main(["--no-cuda"]) == 1
    out = capsys.readouterr().out
    assert "cpu plugin:   FAILED" in out and "no compiler" in out, out
    assert out.splitlines()[-1] == "doctor: FAILED: cpu plugin (always expected): no compiler", out


def test_stylegen_doctor_exits_1_without_a_compiler(tmp_path, monkeypatch):
    """For real: an empty build cache and CXX naming a missing binary."""
    saved = dict(cuda_ops._results)
    cuda_ops.forget()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    monkeypatch.delenv("STYLEGEN_OPS", raising=False)
    try:
        r = stylegen_doctor("--no-cuda")
    finally:
        cuda_ops.forget()
        cuda_ops._results.update(saved)
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # no traceback
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("doctor: FAILED: cpu plugin") and f"'{tmp_path / 'no-such-c++'}'" in last, r.output
    assert not list((tmp_path / "ext").rglob("*.so"))


def test_cuda_is_expected_where_a_gpu_is_visible(cpu_plugin, fake_build, fake_gpus):
    fake_build.outcomes["cpu"] = cpu_plugin
    fake_build.outcomes["cuda"] = PluginUnavailable("no CUDA toolkit found (nvcc)")
    fake_gpus([])  # no GPU: a CUDA plugin nobody could run is reported, not an error
    r = stylegen_doctor()
    assert r.exit_code == 0, r.output
    assert "cuda plugin:  FAILED" in r.output and r.output.strip().endswith("doctor: OK (cpu plugin works)")
    fake_gpus([(9, 0)])
    r = stylegen_doctor()
    assert r.exit_code == 1, r.output
    assert "GPUs:         Fake GPU (9, 0)" in r.output
    last = r.output.strip().splitlines()[-1]
    assert last == "doctor: FAILED: cuda plugin (a GPU is visible): no CUDA toolkit found (nvcc)", r.output
    assert stylegen_doctor("--no-cuda").exit_code == 0  # not asked for


def test_cuda_is_expected_when_requested(cpu_plugin, fake_build, fake_gpus, monkeypatch):
    fake_build.outcomes["cpu"] = cpu_plugin
    fake_build.outcomes["cuda"] = PluginUnavailable("nvcc fatal: Unsupported gpu architecture 'compute_30'")
    fake_gpus([])
    r = stylegen_doctor("--require-cuda")
    assert r.exit_code == 1 and "cuda plugin (--require-cuda): nvcc fatal" in r.output, r.output
    monkeypatch.setenv("STYLEGEN_OPS", "cuda")
    r = stylegen_doctor()
    assert r.exit_code == 1 and "cuda plugin (STYLEGEN_OPS=cuda): nvcc fatal" in r.output, r.output
    # Both plugins working: 0, whatever was asked.
    fake_build.outcomes["cuda"] = ModuleType("fake_cuda_plugin")
    cuda_ops.forget()  # the failure above is remembered for the process otherwise
    r = stylegen_doctor("--require-cuda")
    assert r.exit_code == 0 and r.output.strip().endswith("doctor: OK (cpu plugin works, cuda plugin works)")


def test_contradicting_options_are_a_usage_error():
    r = CliRunner().invoke(cli, ["doctor", "--no-cuda", "--require-cuda"], prog_name="stylegen")
    assert r.exit_code == 2
    (line,) = r.output.strip().splitlines()
    assert line.startswith("Error: --no-cuda and --require-cuda contradict each other"), line


def test_verbose_shows_the_build_details(cpu_plugin):
    quiet = stylegen_doctor("--no-cuda")
    r = stylegen_doctor("--no-cuda", "--verbose")
    assert quiet.exit_code == r.exit_code == 0, r.output
    details = [f"name:       {cuda_ops.plugin_name('cpu')}", "build dir:", "C++ flags:  -O3", "ninja file:"]
    for text in details:
        assert text in r.output and text not in quiet.output, (text, r.output)
    # The compiler command lines torch's build used, read back from its build.ninja.
    cflags = next(line for line in r.output.splitlines() if line.strip().startswith("cflags = "))
    assert "-ffp-contract=off" in cflags and "-march=native" not in cflags, cflags
    assert any(line.strip().startswith("ldflags = ") and "-fopenmp" in line for line in r.output.splitlines())


def test_verbose_shows_the_compiler_output_of_a_failed_build(fake_build):
    fake_build.outcomes["cpu"] = compile_error()
    quiet = stylegen_doctor("--no-cuda")
    assert quiet.exit_code == 1 and "--verbose shows the compiler output" in quiet.output
    assert "error: expected ';' before 'return'" not in quiet.output
    cuda_ops.forget()  # a failed build is remembered for the process: let the verbose run try again
    loud = stylegen_doctor("--no-cuda", "--verbose")
    assert loud.exit_code == 1
    assert "    ops_cpu.cpp:12:5: error: expected ';' before 'return'" in loud.output, loud.output
    assert fake_build.verbose == [False, True]  # --verbose reaches the build (torch prints its log)


@pytest.mark.parametrize("argv", [["--verbose", "--no-cuda"], ["--no-cuda"]])
def test_python_m_doctor_matches_the_cli(cpu_plugin, argv, capsys):
    assert doctor.main(argv) == 0
    out = capsys.readouterr().out
    r = stylegen_doctor(*argv)
    drop = ("cpu plugin:   OK",)  # timings differ between the two runs
    assert [line for line in out.splitlines() if not line.startswith(drop)] == [
        line for line in r.output.splitlines() if not line.startswith(drop)
    ]
