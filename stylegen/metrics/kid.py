"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", eq. 4 and App. D).

KID = unbiased estimate of the squared MMD between the feature distributions with the cubic
polynomial kernel k(x, y) = (x . y / D + 1)^3, averaged over random subsets as in NVIDIA's
`metrics/kernel_inception_distance.py`: 100 subsets of m = min(N_gen, N_real, 1000) samples
each, drawn without replacement from each set.
"""

from __future__ import annotations

import numpy as np

from stylegen.errors import InputError


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / D + 1) ** 3 for x [N, D], y [M, D] -> [N, M] (float64)."""
    d = x.shape[1]
    return (x @ y.T / d + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between samples x [m, D] and y [m, D] (same size m >= 2).

    (sum_{i != j} k(x_i, x_j) + k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2:
    the within-set sums leave out the diagonal, which makes the expectation exactly MMD^2.
    """
    m = x.shape[0]
    assert y.shape[0] == m and m >= 2, (x.shape, y.shape)
    a = polynomial_kernel(x, x) + polynomial_kernel(y, y)
    b = polynomial_kernel(x, y)
    return float((a.sum() - np.trace(a)) / (m * (m - 1)) - 2 * b.sum() / (m * m))


def kid(
    gen_features: np.ndarray,
    real_features: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID between gen [N, D] and real [M, D] features: the mean of `mmd2_unbiased` over subsets."""
    gen = np.asarray(gen_features, np.float64)
    real = np.asarray(real_features, np.float64)
    if gen.ndim != 2 or real.ndim != 2 or gen.shape[1] != real.shape[1]:
        raise ValueError(f"kid: need features [N, D] and [M, D]; got {gen.shape} and {real.shape}")
    m = min(len(gen), len(real), max_subset_size)
    if m < 2:
        raise InputError(f"kid: need at least 2 samples in each set; got {len(gen)} and {len(real)}")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(len(gen), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        total += mmd2_unbiased(x, y)
    return total / num_subsets
