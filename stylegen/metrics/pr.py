"""Improved precision and recall (Kynkaenniemi et al. 2019, "Improved Precision and Recall
Metric for Assessing Generative Models", Sec. 2, eq. 1-2), k = 3 as in `pr50k3_full`.

Each set's manifold is the union of balls around its samples whose radius is the distance to
the sample's k-th nearest neighbour in the same set. Precision = the fraction of generated
samples inside the real manifold; recall = the fraction of real samples inside the generated
manifold. Distances are Euclidean in feature space, computed in float32 batches (NVIDIA's
`metrics/precision_recall.py` does the same in float16 on the GPU).
"""

from __future__ import annotations

import numpy as np
import torch

from stylegen.errors import InputError


def kth_radii(features: torch.Tensor, k: int = 3, batch_size: int = 10000) -> torch.Tensor:
    """Distance from each row of features [N, D] to its k-th nearest other row -> [N]."""
    n = features.shape[0]
    if n <= k:
        raise InputError(f"precision/recall: need more than k={k} samples per set; got {n}")
    radii = []
    for rows in features.split(batch_size):
        dist = torch.cdist(rows, features)  # [B, N]; includes the zero distance to itself
        radii.append(dist.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def in_manifold(
    manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, batch_size: int = 10000
) -> torch.Tensor:
    """For each probe [P, D]: is it within radii[j] of some manifold[j]? -> bool [P]."""
    inside = []
    for rows in probes.split(batch_size):
        inside.append((torch.cdist(rows, manifold) <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside)


def precision_recall(
    real_features: np.ndarray, gen_features: np.ndarray, k: int = 3, batch_size: int = 10000
) -> tuple[float, float]:
    """(precision, recall) of generated features [N, D] against real features [M, D]."""
    real = torch.as_tensor(np.asarray(real_features), dtype=torch.float32)
    gen = torch.as_tensor(np.asarray(gen_features), dtype=torch.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(
            f"precision/recall: need features [M, D] and [N, D]; got {tuple(real.shape)}, {tuple(gen.shape)}"
        )
    precision = in_manifold(real, kth_radii(real, k, batch_size), gen, batch_size).double().mean()
    recall = in_manifold(gen, kth_radii(gen, k, batch_size), real, batch_size).double().mean()
    return float(precision), float(recall)
