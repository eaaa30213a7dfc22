"""Error reporting of the command line: user errors are one `Error:` line (exit 2), bugs keep
their traceback. User errors are exactly the `stylegen.errors.StylegenError`s (and the operating
system refusing a named file)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import cli_helpers
import numpy as np
import pytest
from cli_helpers import run, usage_error
from PIL import Image

import stylegen
from stylegen.errors import InputError, StylegenError, WsFileError
from stylegen.formats.bundled import BundledNetworkError
from stylegen.metrics.weights import MissingWeightsError, WeightsFileError
from stylegen.training.dataset import DatasetError

_ref_ops = cli_helpers._ref_ops
nets = cli_helpers.nets


@pytest.mark.parametrize(
    "cls",
    [stylegen.NetworkLoadError, DatasetError, MissingWeightsError, WeightsFileError, BundledNetworkError, WsFileError],
)
def test_user_errors_derive_from_stylegen_error_and_stay_value_errors(cls):
    assert issubclass(cls, StylegenError) and issubclass(cls, ValueError)  # old `except ValueError` still work
    assert issubclass(InputError, StylegenError) and not issubclass(StylegenError, ValueError)


def _bug(*args, **kwargs):
    raise ValueError("an unexpected bug")


def test_a_bug_keeps_its_traceback_while_a_bad_network_file_is_one_line(nets, tmp_path, monkeypatch):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a network")
    usage_error("sample", "--network", bad, "--seeds", 0, "--outdir", tmp_path, match="bad.pkl: not a network file")
    monkeypatch.setattr(stylegen, "load_network", _bug)
    r = run("sample", "--network", nets["a"], "--seeds", 0, "--outdir", tmp_path)
    assert r.exit_code == 1 and isinstance(r.exception, ValueError), (r.output, r.exception)
    assert "Error:" not in r.output


def test_an_os_error_without_a_file_name_is_a_bug(nets, tmp_path, monkeypatch):
    from stylegen.cli import sample

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sample, "save_png", disk_full)
    r = run("sample", "--network", nets["a"], "--seeds", 0, "--outdir", tmp_path)
    assert r.exit_code == 1 and isinstance(r.exception, OSError) and "Error:" not in r.output


def test_the_installed_command_prints_the_traceback_of_a_bug(nets, tmp_path):
    code = (
        "import sys, stylegen\n"
        "def bug(*a, **k): raise ValueError('an unexpected bug')\n"
        "stylegen.load_network = bug\n"
        "from stylegen.cli.main import main\n"
        "main(sys.argv[1:], prog_name='stylegen')\n"
    )
    args = ["sample", "--network", str(nets["a"]), "--seeds", "0", "--outdir", str(tmp_path)]
    # cwd: not the repository root, whose source folder would shadow the installed package.
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "ValueError: an unexpected bug"


def test_ws_file_errors_are_one_line(nets, tmp_path):
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("ws.npy", b"\x93NUMPY\x01\x00garbage")  # an .npy header, then no valid array
    line = usage_error("mix", "--network", nets["a"], "--fine", broken, "--out", tmp_path / "m.png")
    assert "broken.npz: not a readable ws file" in line
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, ws=np.zeros([1, 3, 5], np.float32), seeds=np.zeros([1], np.int64))
    line = usage_error("mix", "--network", nets["a"], "--fine", wrong, "--out", tmp_path / "m.png")
    assert "wrong.npz: ws of shape (1, 3, 5) do not fit the network" in line


def test_project_refuses_an_unreadable_target_in_one_line(nets, tmp_path):
    target = tmp_path / "photo.png"
    target.write_bytes(b"not an image")
    args = ["--target", target, "--distance", "offline", "--steps", 1, "--outdir", tmp_path / "o", "--device", "cpu"]
    usage_error("project", "--network", nets["a"], *args, match="photo.png: not a readable image")
    Image.new("RGB", (16, 16)).save(target)
    usage_error("project", "--network", nets["cond"], *args, match="conditional networks (c_dim=4)")
