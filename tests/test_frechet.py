"""Frechet distance against analytic answers."""

import numpy as np
import pytest

from stylegen.metrics.frechet import feature_stats, frechet_distance


def test_identical_gaussians_are_zero():
    rng = np.random.RandomState(0)
    a = rng.randn(50, 5)
    s = a.T @ a / 50
    assert frechet_distance(np.ones(5), s, np.ones(5), s) == pytest.approx(0, abs=1e-9)


def test_mean_shift_only():
    s = np.diag([1.0, 2.0, 3.0])
    assert frechet_distance(np.zeros(3), s, np.array([1.0, 2.0, 2.0]), s) == pytest.approx(9.0)


def test_diagonal_covariances():
    # For commuting covariances: sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    expect = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expect)


def test_rotated_covariances():
    # 1-D check of the cross term with non-commuting 2x2 matrices: N(0, I) vs N(0, R D R^T).
    t = 0.7
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    d = np.diag([4.0, 0.25])
    s2 = r @ d @ r.T
    expect = 2 + 4.25 - 2 * (2 + 0.5)  # tr(I) + tr(S2) - 2 tr(S2^1/2)
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), s2) == pytest.approx(expect)


def test_feature_stats_recover_gaussian():
    rng = np.random.RandomState(1)
    x = rng.randn(20000, 2) * [1.0, 3.0] + [5.0, -1.0]
    mu, sigma = feature_stats(x)
    assert np.allclose(mu, [5, -1], atol=0.05) and np.allclose(np.diag(sigma), [1, 9], rtol=0.05)
    with pytest.raises(ValueError, match="need features"):
        feature_stats(np.zeros([1, 3]))
