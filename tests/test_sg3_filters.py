"""StyleGAN3's low-pass filter design (stylegen/networks/sg3_design.py) against scipy.

Oracles: `scipy.signal.firwin`, `kaiser_atten`, `kaiser_beta`, `scipy.special.j1` and NVIDIA's
radial design spelled with them; the library itself must not import scipy.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import scipy.special
import torch

from stylegen.networks.sg3_design import (
    bessel_j1,
    design_config3,
    design_lowpass_filter,
    firwin_kaiser,
    jinc_lowpass,
    kaiser_atten,
    kaiser_beta,
)

# float64 filter designs vs scipy, relative to the filter's peak: only rounding differs (measured
# 3.6e-16 for firwin, 3.2e-15 for the jinc filter), so their float32 casts agree within an ulp.
FILTER_RTOL = 1e-13
J1_ATOL = 1e-14  # Bessel's integral by the trapezoidal rule: measured 2e-15 up to x = 200


def _sg3_filter_args():
    """Every (numtaps, cutoff, width, fs, radial) the T and R layouts of 16-1024 px use."""
    args = set()
    for R in (16, 32, 64, 128, 256, 512, 1024):
        for arch in ("stylegan3-t", "stylegan3-r"):
            for s in design_config3(img_resolution=R, architecture=arch).layers:
                fs = s.in_sampling_rate * s.up_factor
                if s.up_taps > 1:
                    args.add((s.up_taps, s.in_cutoff, 2 * s.in_half_width, fs, False))
                if s.down_taps > 1:
                    args.add((s.down_taps, s.out_cutoff, 2 * s.out_half_width, fs, s.down_radial))
    return sorted(args)


def _random_filter_args(n=300, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        numtaps = int(rng.integers(2, 49))
        fs = float(rng.choice([4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 37.5, 100.0]))
        out.append((numtaps, rng.uniform(0.005, 0.995) * fs / 2, rng.uniform(1e-3, 2.0) * fs / 2, fs))
    return out


def _nvidia_jinc(numtaps, cutoff, width, fs):
    """NVIDIA's radial design (design_lowpass_filter, radial=True) spelled with scipy."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    w = np.kaiser(numtaps, scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2))))
    f *= np.outer(w, w)
    return f / np.sum(f)


def _assert_filter_close(got, want, what):
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= FILTER_RTOL, f"{what}: relative error {err:.3g}"


def test_kaiser_formulas_match_scipy():
    for numtaps in (2, 12, 24, 101):
        for width in (1e-3, 0.05, 0.3, 0.75, 1.4):
            a = kaiser_atten(numtaps, width)
            assert a == pytest.approx(scipy.signal.kaiser_atten(numtaps, width), rel=1e-15, abs=0)
    for atten in (0, 10, 21, 21.5, 35, 50, 50.01, 80, 200):
        assert kaiser_beta(atten) == pytest.approx(scipy.signal.kaiser_beta(atten), rel=1e-15, abs=0)


def test_firwin_matches_scipy_on_the_sg3_filters():
    args = [a for a in _sg3_filter_args() if not a[4]]
    assert len(args) > 50
    for numtaps, cutoff, width, fs, _ in args:
        want = scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)
        _assert_filter_close(firwin_kaiser(numtaps, cutoff, width, fs), want, f"firwin{numtaps, cutoff, width, fs}")


def test_firwin_matches_scipy_on_random_arguments():
    for numtaps, cutoff, width, fs in _random_filter_args():
        want = scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)
        got = firwin_kaiser(numtaps, cutoff, width, fs)
        _assert_filter_close(got, want, f"firwin{numtaps, cutoff, width, fs}")
        f32 = np.abs(got.astype(np.float32) - want.astype(np.float32)).max()
        assert f32 <= np.spacing(np.float32(np.abs(want).max())), "float32 casts differ by more than an ulp"


def test_bessel_j1_matches_scipy():
    x = np.concatenate([np.linspace(-30, 0, 3001), np.linspace(0, 200, 20001), [1e-12, 1e-6, 0.999, 1, 1.001]])
    np.testing.assert_allclose(bessel_j1(x), scipy.special.j1(x), rtol=0, atol=J1_ATOL)
    small = np.array([1e-12, 1e-6, 1e-3, 0.5])  # the series: relative precision near 0
    np.testing.assert_allclose(bessel_j1(small), scipy.special.j1(small), rtol=1e-15, atol=0)
    assert bessel_j1(np.zeros([2, 3])).shape == (2, 3)


def test_jinc_filter_matches_nvidias_scipy_design():
    args = [a[:4] for a in _sg3_filter_args() if a[4]]
    args += [a for a in _random_filter_args(120, seed=1) if a[0] % 2 == 0]
    assert len(args) > 80
    for numtaps, cutoff, width, fs in args:
        got = jinc_lowpass(numtaps, cutoff, width, fs)
        _assert_filter_close(got, _nvidia_jinc(numtaps, cutoff, width, fs), f"jinc{numtaps, cutoff, width, fs}")


def test_jinc_filter_with_a_centre_tap_takes_the_limit():
    f = jinc_lowpass(5, 2.0, 3.0, 16)  # odd: a tap at r = 0, where J1(2 pi c r) / (pi r) -> c
    assert np.isfinite(f).all() and f.sum() == pytest.approx(1)
    assert f[2, 2] == f.max()
    np.testing.assert_allclose(f, f.T, rtol=0, atol=0)


def test_filter_arguments_are_checked():
    assert design_lowpass_filter(1, 2.0, 4.0, 16) is None
    assert design_lowpass_filter(12, 2.0, 12.0, 32).dtype == torch.float32
    assert design_lowpass_filter(12, 2.0, 12.0, 32, radial=True).shape == (12, 12)
    for cutoff in (0, 8, 9, -1):
        with pytest.raises(ValueError, match="cutoff"):
            firwin_kaiser(12, cutoff, 4.0, 16)
        with pytest.raises(ValueError, match="cutoff"):
            jinc_lowpass(12, cutoff, 4.0, 16)
    with pytest.raises(ValueError, match="numtaps"):
        design_lowpass_filter(0, 2.0, 4.0, 16)


def test_library_code_does_not_import_scipy(tmp_path):
    code = (
        "import sys; from stylegen.networks.sg3_design import design_config3, init_generator3\n"
        "init_generator3(design_config3(img_resolution=16, architecture='stylegan3-r', z_dim=8, w_dim=8,"
        " channel_base=128, channel_max=8, num_layers=4))\n"
        "bad = sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
