"""Frechet distance of feature sets: FID (Heusel et al. 2017) on Inception-v3 pool3 features.

The maths lives in `stylegen.metrics.frechet`; this file only fits the Gaussians to two feature sets.
The number is an FID, comparable with published ones, only for the 2015-12-05 Inception
weights, 50k generated images and the full dataset (`fid50k_full`); with other features (e.g.
`fd_effnet_lite0`) it is a Frechet distance in that network's feature space.
"""

from __future__ import annotations

import numpy as np

from stylegen.metrics.frechet import feature_stats, frechet_distance


def frechet_of_features(gen_features: np.ndarray, real_features: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to gen [N, D] and real [M, D] features."""
    mu_g, sigma_g = feature_stats(gen_features)
    mu_r, sigma_r = feature_stats(real_features)
    return frechet_distance(mu_g, sigma_g, mu_r, sigma_r)
