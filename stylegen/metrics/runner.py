"""Compute a list of metrics for a generator and a dataset: one result record per metric.

Steps: `check_weights` (every weight file needed is located before anything slow happens),
then per metric the generated images' features (shared between metrics that use the same
network and count), the dataset's features (`dataset_stats`, cached) and the maths
(`fid`, `kid`, `pr`, `ppl`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from stylegen.metrics import METRICS, MetricSpec, dataset_stats, features, fid, kid, perceptual, ppl, pr
from stylegen.networks.generator import to_uint8
from stylegen.training.dataset import DatasetError, load_labels

OFFLINE_PPL = "or use the offline metric ppl2_wend_effnet_lite0"
Progress = Callable[[str, int], object]  # (label, total) -> context manager with update(n)


@dataclass
class MetricOptions:
    """Settings shared by every metric of one run."""

    feature_net: str | None = None  # Inception-v3 weights (state dict, or NVIDIA TorchScript)
    vgg: str | None = None  # torchvision VGG16 weights (pr50k3_full, ppl2_wend)
    num: int | None = None  # generated images / path samples (default: each metric's own)
    batch: int = 16  # images per forward pass
    seed: int = 0  # seeds z, labels and noise
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    use_cache: bool = True  # cache dataset features on disk
    progress: Progress | None = None


def check_weights(names: list[str], opts: MetricOptions) -> None:
    """Raise MissingWeightsError (one line) for the first weight file that is absent."""
    for name in names:
        spec = METRICS[name]
        if spec.net is not None:
            features.locate_feature_net(spec.net, opts.feature_net, opts.vgg)
        if spec.distance is not None:
            perceptual.check_distance(spec.distance, opts.vgg, OFFLINE_PPL)


def label_sampler(G: torch.nn.Module, data: str | os.PathLike):
    """For a conditional G: c_sampler(n, generator) drawing labels of random dataset images."""
    if G.c_dim == 0:
        return None
    _, names = dataset_stats.image_names(data)
    try:
        labels = load_labels(data, names)
    except DatasetError as e:
        raise DatasetError(f"conditional network (c_dim={G.c_dim}): {e}") from None
    if labels.shape[1] != G.c_dim:
        raise DatasetError(f"{data}: labels have {labels.shape[1]} classes, the network c_dim={G.c_dim}")
    return lambda n, gen: labels[torch.randint(len(labels), [n], generator=gen)]


def generated_features(
    G: torch.nn.Module, net: features.FeatureNet, num: int, opts: MetricOptions, c_sampler=None
) -> np.ndarray:
    """Features [num, D] of G(z) for z ~ N(0, I) (truncation 1, random noise, as NVIDIA's metrics)."""
    gen = torch.Generator().manual_seed(opts.seed)
    out = []
    bar = opts.progress(f"Generated features ({net.kind})", num) if opts.progress else nullcontext()
    with torch.random.fork_rng(devices=[]), bar as b:
        torch.manual_seed(opts.seed)
        for start in range(0, num, opts.batch):
            n = min(opts.batch, num - start)
            z = torch.randn([n, G.z_dim], generator=gen).to(opts.device)
            c = c_sampler(n, gen).to(opts.device) if c_sampler is not None else None
            with torch.no_grad():
                img = G(z, c, noise_mode="random")
            out.append(net(to_uint8(img).permute(0, 3, 1, 2)).cpu().numpy())
            if b is not None:
                b.update(n)
    return np.concatenate(out)


def _results(spec: MetricSpec, gen: np.ndarray, real: np.ndarray) -> dict[str, float]:
    if spec.kind == "fd":
        return {spec.name: fid.frechet_of_features(gen, real)}
    if spec.kind == "kid":
        return {spec.name: kid.kid(gen, real)}
    precision, recall = pr.precision_recall(real, gen, k=3)
    return {f"{spec.name}_precision": precision, f"{spec.name}_recall": recall}


def run_metrics(G: torch.nn.Module, data: str | os.PathLike, names: list[str], opts: MetricOptions) -> Iterator[dict]:
    """Yield one record per metric: {metric, results, num_gen, num_real, weights, comparable, total_time}."""
    check_weights(names, opts)
    c_sampler = label_sampler(G, data) if data is not None else None
    G_fast = G.freeze() if hasattr(G, "freeze") else G  # the inference form for the fakes (not PPL: it redraws noise)
    nets: dict[str, features.FeatureNet] = {}
    gen_cache: dict[tuple[str, int], np.ndarray] = {}
    for name in names:
        spec = METRICS[name]
        start = time.time()
        num = opts.num or spec.num_gen
        record = {"metric": name, "num_gen": num}
        if spec.kind == "ppl":
            distance = perceptual.load_distance(spec.distance, opts.vgg, OFFLINE_PPL).to(opts.device)
            bar = opts.progress("Path lengths", num) if opts.progress else nullcontext()
            with bar as b:
                lengths = ppl.path_lengths(
                    G, distance, num, epsilon=1e-4, sampling="end", batch_size=max(1, opts.batch // 2),
                    seed=opts.seed, c_sampler=c_sampler, progress=b.update if b is not None else None,
                )  # fmt: skip
            record["results"] = {name: ppl.ppl_from_lengths(lengths)}
            record.update(num_real=0, weights=distance.name, comparable=spec.published and num == spec.num_gen)
        else:
            if spec.net not in nets:
                nets[spec.net] = features.load_feature_net(spec.net, opts.feature_net, opts.vgg).to(opts.device)
            net = nets[spec.net]
            if (spec.net, num) not in gen_cache:
                gen_cache[(spec.net, num)] = generated_features(G_fast, net, num, opts, c_sampler)
            real = dataset_stats.dataset_features(
                data, net, G.img_resolution, spec.max_real, opts.batch, opts.device, opts.progress, opts.use_cache
            )
            record["results"] = _results(spec, gen_cache[(spec.net, num)], real)
            comparable = spec.published and net.comparable and num == spec.num_gen
            record.update(num_real=len(real), weights=net.note, comparable=comparable)
        record["total_time"] = round(time.time() - start, 3)
        yield record
