"""GAN metrics with NVIDIA's names (fid50k_full, kid50k_full, pr50k3_full, ppl2_wend) and offline ones.

`METRICS` maps a name to its `MetricSpec`; `stylegen.metrics.runner.run_metrics` computes a list
of them for a generator and a dataset. Names without a `_effnet_lite0` suffix are NVIDIA's and
give published-comparable numbers only with the standard weights (see docs/metrics.md); the
`*_effnet_lite0` metrics work offline out of the box and are comparable only with each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """What one metric computes, on which features, with how many images."""

    name: str  # e.g. 'fid50k_full'
    kind: str  # 'fd' (Frechet distance), 'kid', 'pr' (precision/recall, k=3), 'ppl'
    net: str | None  # feature network: 'inception' | 'vgg16' | 'effnet_lite0'; None for ppl
    distance: str | None  # ppl's perceptual distance: 'lpips' | 'offline'; None otherwise
    num_gen: int  # generated images (ppl: path samples); `--num` overrides
    max_real: int | None  # dataset images used (the first ones); None = all
    published: bool  # NVIDIA's definition: comparable with papers given the standard weights
    summary: str  # one line for docs and --help


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("fid50k_full", "fd", "inception", None, 50000, None, True,
                   "FID: 50k generated vs the full dataset, Inception-v3 2015-12-05 pool3"),
        MetricSpec("kid50k_full", "kid", "inception", None, 50000, 1000000, True,
                   "KID: unbiased MMD^2, cubic kernel, 100 subsets of 1000, Inception-v3"),
        MetricSpec("pr50k3_full", "pr", "vgg16", None, 50000, 200000, True,
                   "improved precision and recall, k=3, VGG16 fc7 features, up to 200k real"),
        MetricSpec("ppl2_wend", "ppl", None, "lpips", 50000, None, True,
                   "perceptual path length in W, end points, epsilon 1e-4, LPIPS (VGG16)"),
        MetricSpec("fd_effnet_lite0", "fd", "effnet_lite0", None, 50000, None, False,
                   "offline: Frechet distance on EfficientNet-Lite0 features (NOT FID)"),
        MetricSpec("ppl2_wend_effnet_lite0", "ppl", None, "offline", 50000, None, False,
                   "offline: path length as ppl2_wend with the EfficientNet-Lite0 distance (NOT LPIPS)"),
    )
}  # fmt: skip


def parse_metric_names(text: str) -> list[str]:
    """'fid50k_full,kid50k_full' -> names (duplicates dropped); ValueError naming unknown ones."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError(f"no metric named; choose from {', '.join(METRICS)}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    return names
