"""The training loop: `setup`, `train_step`, `maybe_snapshot`, driven by `train`.

Reproducibility: every random draw of a step (latents, labels, noise, style mixing,
augmentation) comes from the global RNG reseeded per (seed, step, phase, chunk), and the data
order from per-epoch permutations of the seed. So a resumed run continues exactly, and any
split of the global batch over processes (torchrun) or rounds (--batch-gpu) computes the same
chunks; gradients and stats are summed over chunks, as fractions of the global batch, in
global chunk order, so N processes give bitwise the weights of one (see `_run_phase`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch

from stylegen.errors import InputError
from stylegen.networks.discriminator import Discriminator
from stylegen.networks.generator import Generator
from stylegen.training import distributed
from stylegen.training.ada import AdaptiveP
from stylegen.training.config import TrainConfig
from stylegen.training.dataset import DatasetOptions, ImageDataset
from stylegen.training.losses import LossConfig, StyleGAN2Loss, blur_sigma, magnitude_emas
from stylegen.training.setup import build_networks, make_augment, make_optimizers, restore
from stylegen.training.snapshots import SnapshotWriter


class TrainingDiverged(RuntimeError):
    """A loss became NaN/Inf; the message names it and the last good snapshot."""


@dataclass
class TrainState:
    cfg: TrainConfig
    dist: distributed.Dist
    dataset: ImageDataset
    G: Generator
    G_ema: Generator
    D: Discriminator
    G_opt: torch.optim.Optimizer
    D_opt: torch.optim.Optimizer
    loss: StyleGAN2Loss
    augment: torch.nn.Module | None
    step: int = 0  # minibatches done
    ada: AdaptiveP | None = None  # the adaptive augmentation controller (--aug ada)
    _perms: dict = field(default_factory=dict)

    @property
    def nimg(self) -> int:
        return self.step * self.cfg.batch_size

    @property
    def kimg(self) -> float:
        return self.nimg / 1000


def setup(cfg: TrainConfig, dist: distributed.Dist) -> TrainState:
    """Dataset, networks, optimizers, augmentation; resumed from cfg.resume when given."""
    torch.manual_seed(cfg.seed)
    opts = DatasetOptions(resolution=cfg.resolution, resize=cfg.resize, skip_bad=cfg.skip_bad, use_labels=cfg.cond)
    dataset = ImageDataset(cfg.data, opts, mirror=cfg.mirror)
    G, D, source = build_networks(cfg, dataset)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    augment = make_augment(cfg)
    loss_cfg = loss_config(cfg, dataset.resolution, fine_tuning=source is not None and source.snapshot is None)
    G_opt, D_opt = make_optimizers(cfg, G, D, loss_cfg.r1_gamma)
    st = TrainState(cfg, dist, dataset, G, G_ema, D, G_opt, D_opt, StyleGAN2Loss(G, D, loss_cfg, augment), augment)
    if augment is not None and cfg.aug == "ada":
        st.ada = AdaptiveP(cfg.batch_size, cfg.ada_target, cfg.ada_interval, cfg.ada_kimg, p=cfg.aug_p)
    if source is not None:
        restore(st, source)
    for net in (st.G, st.D, st.G_ema):
        net.to(dist.device)
    st.loss.pl_mean = st.loss.pl_mean.to(dist.device)
    batch_gpu(st)  # refuse a bad split before anything is written
    return st


def loss_config(cfg: TrainConfig, resolution: int, fine_tuning: bool) -> LossConfig:
    """The preset's regularisers. Fine-tuning (weights only) starts without the blur of D's
    inputs, as NVIDIA's --resume does: it is a fade-in for networks trained from scratch."""
    spec = cfg.spec
    return LossConfig(
        r1_gamma=cfg.r1_gamma(resolution),
        pl_weight=spec.pl_weight,
        style_mixing_prob=spec.style_mixing_prob,
        blur_init_sigma=0.0 if fine_tuning else spec.blur_sigma,
        blur_fade_kimg=cfg.blur_fade_kimg,
    )


def batch_indices(st: TrainState) -> torch.Tensor:
    """Dataset indices of this step's global batch: epochs are seeded permutations."""
    n, b = len(st.dataset), st.cfg.batch_size
    out = []
    for i in range(st.step * b, (st.step + 1) * b):
        epoch = i // n
        if epoch not in st._perms:
            st._perms = {epoch: torch.randperm(n, generator=torch.Generator().manual_seed(st.cfg.seed * 7919 + epoch))}
        out.append(st._perms[epoch][i % n])
    return torch.stack(out)


def chunk_seed(seed: int, step: int, phase: int, chunk: int) -> int:
    return ((seed * 1_000_003 + step) * 64 + phase) * 4096 + chunk


def batch_gpu(st: TrainState) -> int:
    """Images per chunk; every process needs a chunk in the first round (see `_run_phase`)."""
    bg = st.cfg.batch_gpu or max(st.cfg.batch_size // st.dist.world, 1)
    if st.cfg.batch_size % bg:
        raise InputError(f"--batch {st.cfg.batch_size} is not a multiple of --batch-gpu {bg}")
    if st.cfg.batch_size // bg < st.dist.world:
        raise InputError(
            f"--batch {st.cfg.batch_size} in chunks of --batch-gpu {bg} leaves some of the "
            f"{st.dist.world} processes without a chunk"
        )
    return bg


def _phases(st: TrainState) -> list[tuple[str, str, int]]:
    """(network, kind, gain) for this step; lazy regularisation multiplies its gain by the interval."""
    cfg = st.cfg
    phases = [("G", "main", 1)]
    if st.loss.cfg.pl_weight > 0 and st.step % cfg.pl_interval == 0:
        phases.append(("G", "reg", cfg.pl_interval))
    phases.append(("D", "main", 1))
    if st.loss.cfg.r1_gamma > 0 and st.step % cfg.r1_interval == 0:
        phases.append(("D", "reg", cfg.r1_interval))
    return phases


def _chunk_inputs(st: TrainState, idx: torch.Tensor):
    dev = st.dist.device
    items = [st.dataset[int(i)] for i in idx]
    real = torch.stack([im for im, _ in items]).to(dev).to(torch.float32) / 127.5 - 1
    real_c = torch.stack([c for _, c in items]).to(dev)
    z = torch.randn([len(idx), st.G.z_dim], device=dev)
    gen_c = st.dataset.labels[torch.randint(len(st.dataset.names), [len(idx)])].to(dev)
    if st.dataset.c_dim == 0:
        real_c = gen_c = None
    return real, real_c, z, gen_c


def _run_chunk(st: TrainState, p: int, net: str, kind: str, gain: int, idx: torch.Tensor, k: int) -> dict:
    """Backpropagate chunk k of phase p into fresh .grad; return its stats as fractions of the batch."""
    bg, b = batch_gpu(st), st.cfg.batch_size
    torch.manual_seed(chunk_seed(st.cfg.seed, st.step, p, k))
    real, real_c, z, gen_c = _chunk_inputs(st, idx[k * bg : (k + 1) * bg])
    g = gain * bg / b
    if (net, kind) == ("G", "main"):
        s = st.loss.g_main(z, gen_c, g)
    elif (net, kind) == ("G", "reg"):
        s = st.loss.g_reg(z, gen_c, g)
    elif kind == "main":
        s = st.loss.d_main(real, real_c, z, gen_c, g)
    else:
        s = st.loss.d_reg(real, real_c, g)
    return {key: v.float() * (bg / b) for key, v in s.items()}


def _flatten(params: list[torch.nn.Parameter], stats: dict) -> torch.Tensor:
    """One chunk's gradients (zeros where a parameter got none) and stats, sorted by name, as one vector."""
    grads = [p.grad.flatten() if p.grad is not None else torch.zeros_like(p).flatten() for p in params]
    return torch.cat(grads + [stats[k].reshape(-1) for k in sorted(stats)])


def _run_phase(st: TrainState, p: int, net: str, kind: str, gain: int, idx: torch.Tensor) -> dict:
    """One phase over the global batch: set the summed gradients on .grad, return the summed stats.

    Multi-process training equals one process by design: chunk k's inputs and random draws
    depend only on (seed, step, phase, k), each chunk backpropagates into fresh .grad (never
    accumulated by autograd across chunks), and the per-chunk gradients and stats of all
    processes are added in global chunk order 0, 1, 2, ... (distributed.ordered_sum), the
    order one process adds them in. With the same chunk size (--batch-gpu), ops implementation,
    thread count and hardware the weights are bitwise equal for any number of processes.
    Chunks go round-robin: in round r process i runs chunk r * world + i.
    """
    bg, b, d = batch_gpu(st), st.cfg.batch_size, st.dist
    module = st.G if net == "G" else st.D
    params = [q for q in module.parameters() if q.requires_grad]
    n = b // bg
    if d.world == 1:
        return _run_phase_alone(st, p, net, kind, gain, idx, params, n)
    total, shapes, flat = None, {}, None
    for r in range(math.ceil(n / d.world)):
        k = r * d.world + d.rank
        if k < n:
            for q in params:
                q.grad = None
            stats = _run_chunk(st, p, net, kind, gain, idx, k)
            shapes = {key: v.shape for key, v in sorted(stats.items())}
            flat = _flatten(params, stats)
        else:  # this process has no chunk in the last round: pad (batch_gpu ensures round 0 is full)
            flat = torch.zeros_like(flat)
        total = distributed.ordered_sum(flat, d, min(d.world, n - r * d.world), total)
    sizes = [q.numel() for q in params] + [math.prod(s) for s in shapes.values()]
    parts = total.split(sizes)
    for q, g in zip(params, parts):
        q.grad = torch.nan_to_num(g.view_as(q), nan=0, posinf=1e5, neginf=-1e5)
    return {key: v.view(shape) for (key, shape), v in zip(shapes.items(), parts[len(params) :])}


def _run_phase_alone(st, p, net, kind, gain, idx, params, n: int) -> dict:
    """_run_phase in one process, without the flat gradient vector (a copy of every gradient per
    chunk: ~10% of a phase at 32x32 on a 2-core CPU). The same element-wise additions in the same
    chunk order, so the result is bitwise the multi-process one."""
    grads, stats = None, None
    for k in range(n):
        for q in params:
            q.grad = None
        s = _run_chunk(st, p, net, kind, gain, idx, k)
        g = [q.grad if q.grad is not None else torch.zeros_like(q) for q in params]
        if grads is None:
            grads, stats = g, s
        else:
            for acc, x in zip(grads, g):
                acc.add_(x)
            stats = {key: stats[key] + s[key] for key in stats}
    for q, g in zip(params, grads):
        q.grad = torch.nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5, out=g)
    return stats


def _check_finite(st: TrainState, stats: dict) -> None:
    for key, v in stats.items():
        if v.numel() == 1 and not torch.isfinite(v).all():
            raise TrainingDiverged(f"{key} is {float(v)} at kimg {st.kimg:.3f} (step {st.step})")


def train_step(st: TrainState) -> dict:
    """One minibatch: G main, G reg (lazily), D main, D reg (lazily), EMA, ADA."""
    idx = batch_indices(st)
    st.loss.blur_sigma = blur_sigma(st.loss.cfg, st.nimg)
    step_stats: dict[str, torch.Tensor] = {}
    for p, (net, kind, gain) in enumerate(_phases(st)):
        module, opt = (st.G, st.G_opt) if net == "G" else (st.D, st.D_opt)
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        stats = _run_phase(st, p, net, kind, gain, idx)
        module.requires_grad_(False)
        _check_finite(st, stats)
        opt.step()
        if (net, kind) == ("G", "main") and "w_mean" in stats:
            w_avg = st.G.mapping.w_avg
            w_avg.copy_(stats.pop("w_mean").view_as(w_avg).lerp(w_avg, st.G.config.w_avg_beta))
        if (net, kind) == ("G", "reg"):
            st.loss.pl_mean.copy_(st.loss.pl_mean.lerp(stats.pop("pl_len_mean").squeeze(), st.loss.cfg.pl_decay))
        if "magnitude_ema" in stats:  # StyleGAN3, D main: the batch average of the chunks' updates
            for buf, value in zip(magnitude_emas(st.G), stats.pop("magnitude_ema")):
                buf.copy_(value)
        step_stats.update({k: v.squeeze() for k, v in stats.items() if v.numel() == 1})
    _update_ema(st)
    _update_ada(st, step_stats)
    st.step += 1
    return {k: float(v) for k, v in step_stats.items()}


@torch.no_grad()
def _update_ema(st: TrainState) -> None:
    """G_ema = lerp(G, G_ema, beta) with the half-life in kimg (ramped up early in training)."""
    ema_nimg = st.cfg.ema_kimg * 1000
    if st.cfg.spec.ema_rampup is not None:
        ema_nimg = min(ema_nimg, (st.nimg + st.cfg.batch_size) * st.cfg.spec.ema_rampup)
    beta = 0.5 ** (st.cfg.batch_size / max(ema_nimg, 1e-8))
    for p_ema, p in zip(st.G_ema.parameters(), st.G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(st.G_ema.buffers(), st.G.buffers()):
        b_ema.copy_(b)


def _update_ada(st: TrainState, stats: dict) -> None:
    """ADA: move p so that E[sign(D(real))] approaches the target (Karras et al. 2020a, sec. 3)."""
    if st.ada is None or "real_sign" not in stats:
        return
    b = st.cfg.batch_size
    st.augment.p.fill_(st.ada.observe(float(stats["real_sign"]) * b, b))


def train(cfg: TrainConfig, dist: distributed.Dist | None = None, progress=None) -> TrainState:
    """Train until cfg.kimg; snapshot every cfg.snap kimg and at the end. Returns the final state."""
    dist = dist or distributed.init()
    st = setup(cfg, dist)
    writer = SnapshotWriter(st)
    writer.start()
    total = math.ceil(cfg.kimg * 1000 / cfg.batch_size)
    t0 = time.time()
    while st.step < total:
        try:
            stats = train_step(st)
        except TrainingDiverged as e:
            last = writer.last_snapshot()
            raise TrainingDiverged(f"{e}; last good snapshot: {last or 'none yet'}") from None
        writer.accumulate(stats)
        if progress is not None and dist.main:
            progress(st, stats, time.time() - t0)
        writer.maybe_snapshot(force=st.step >= total)
    return st
