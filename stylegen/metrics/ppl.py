"""Perceptual path length (Karras et al. 2019, "A Style-Based Generator Architecture for GANs",
Sec. 4.2, eq. 2-3), as NVIDIA's `ppl2_wend` (stylegan2-ada-pytorch `metrics/perceptual_path_length.py`).

For pairs of latents, take two points t and t + epsilon on the path between their w (space 'w',
linear interpolation) and measure d(G(w_t), G(w_t+eps)) / epsilon^2 with a perceptual distance
d (LPIPS on VGG16). 'end' sampling puts t = 0 (the path's end point), 'full' draws t ~ U(0, 1).
Both images of a pair share one draw of the per-pixel noise. The result is the mean after
dropping the values below the 1st and above the 99th percentile.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from stylegen.metrics.perceptual import PerceptualDistance


def _randomize_noise(G: torch.nn.Module, gen: torch.Generator) -> None:
    """Draw fresh `noise_const` buffers (used by noise_mode='const' for both images of a pair)."""
    for name, buf in G.synthesis.named_buffers():
        if name.endswith("noise_const"):
            buf.copy_(torch.randn(buf.shape, generator=gen).to(buf.device))


def path_lengths(
    G: torch.nn.Module,
    distance: PerceptualDistance | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    num_samples: int,
    epsilon: float = 1e-4,
    sampling: str = "end",
    batch_size: int = 2,
    seed: int = 0,
    c_sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per-sample scaled distances d(G(w_t), G(w_t+eps)) / eps^2 -> float64 [num_samples].

    distance(img0, img1) takes images [N, C, H, W] in ~[-1, 1] and returns [N]. Images above
    256x256 are box-downsampled to 256 first, as NVIDIA does. G is copied (its noise buffers are
    redrawn per batch); c_sampler(n, generator) returns labels [n, c_dim] for conditional G.
    """
    if sampling not in ("end", "full"):
        raise ValueError(f"ppl: sampling must be 'end' or 'full'; got {sampling!r}")
    G = copy.deepcopy(G).eval().requires_grad_(False)
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    dists = []
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        z = torch.randn([n * 2, G.z_dim], generator=gen).to(device)
        c = c_sampler(n, gen).repeat_interleave(2, dim=0).to(device) if c_sampler is not None else None
        t = torch.zeros([n, 1, 1]) if sampling == "end" else torch.rand([n, 1, 1], generator=gen)
        t = t.to(device)
        _randomize_noise(G, gen)
        with torch.no_grad():
            ws = G.mapping(z, c)  # [2n, num_ws, w_dim]
            w0, w1 = ws[0::2], ws[1::2]
            # eq. 3 in W: the images at lerp(w0, w1, t) and lerp(w0, w1, t + eps)
            pair = torch.stack([torch.lerp(w0, w1, t), torch.lerp(w0, w1, t + epsilon)], dim=1)
            img = G.synthesis(pair.flatten(0, 1), noise_mode="const")  # [2n, C, R, R]
            if img.shape[-1] > 256:
                img = F.avg_pool2d(img, img.shape[-1] // 256)
            d = distance(img[0::2], img[1::2]) / epsilon**2
        dists.append(d.double().cpu().reshape(-1))
        done += n
        if progress is not None:
            progress(n)
    return torch.cat(dists).numpy()


def ppl_from_lengths(lengths: np.ndarray) -> float:
    """Mean of the lengths within [1st percentile (lower), 99th percentile (higher)]."""
    lengths = np.asarray(lengths, np.float64)
    lo = np.percentile(lengths, 1, method="lower")
    hi = np.percentile(lengths, 99, method="higher")
    return float(lengths[(lengths >= lo) & (lengths <= hi)].mean())
