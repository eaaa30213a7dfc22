"""Building the networks, optimizers and augmentation of a run, and resuming one."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegen.errors import InputError
from stylegen.formats.snapshot import NetworkLoadError, load_network, load_snapshot, network_from_snapshot
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig
from stylegen.training.config import TrainConfig
from stylegen.training.dataset import ImageDataset


@dataclass
class ResumeSource:
    path: Path
    snapshot: dict | None  # our container (with 'training' for an exact resume), else None
    G: Generator
    G_ema: Generator
    D: Discriminator | None  # None: the discriminator starts fresh


def newest_snapshot(run_dir: str | Path) -> Path | None:
    snaps = sorted(Path(run_dir).glob("network-snapshot-*.pkl"))
    return snaps[-1] if snaps else None


def _resume_path(cfg: TrainConfig) -> Path | None:
    if cfg.resume is None:
        return None
    if cfg.resume == "auto":
        return newest_snapshot(cfg.outdir)
    path = Path(cfg.resume)
    if not path.is_file():
        raise NetworkLoadError(path, "--resume: no such file")
    return path


def _load_source(path: Path) -> ResumeSource:
    """Read the file once: our snapshot (exact resume) or NVIDIA's pickle (weights only)."""
    try:
        snapshot = load_snapshot(path)
    except NetworkLoadError:
        snapshot = None
        print(
            f"note: {path} is not a stylegen snapshot: resuming weights only "
            "(optimizer state, kimg counter and augment p start fresh)",
            file=sys.stderr,
        )

    def load(which: str):
        if snapshot is not None:
            return network_from_snapshot(snapshot, which, path).eval().requires_grad_(False)
        return load_network(path, which)

    G_ema = load("G_ema")
    try:
        G = load("G")
    except NetworkLoadError:
        G = G_ema  # a generator-only file: G starts from G_ema
    try:
        D = load("D")
    except NetworkLoadError as e:
        print(f"note: {e}; the discriminator starts from scratch", file=sys.stderr)
        D = None
    return ResumeSource(path, snapshot, G, G_ema, D)


def build_networks(cfg: TrainConfig, dataset: ImageDataset) -> tuple[Generator, Discriminator, ResumeSource | None]:
    """G and D for the dataset, from the preset or from the network being resumed."""
    spec = cfg.spec
    path = _resume_path(cfg)
    source = _load_source(path) if path is not None else None
    if source is not None:
        g_cfg = source.G.config
    else:
        g_cfg = GeneratorConfig(
            z_dim=spec.z_dim,
            c_dim=dataset.c_dim,
            w_dim=spec.z_dim,
            img_resolution=dataset.resolution,
            img_channels=dataset.channels,
            mapping_layers=spec.mapping_layers,
            channel_base=spec.channel_base,
            channel_max=spec.channel_max,
            conv_clamp=spec.conv_clamp,
        )
    want = (dataset.resolution, dataset.channels, dataset.c_dim)
    have = (g_cfg.img_resolution, g_cfg.img_channels, g_cfg.c_dim)
    if want != have:
        raise InputError(
            f"--resume {path}: network is {have[0]}px, {have[1]} channel(s), c_dim {have[2]}; "
            f"the dataset is {want[0]}px, {want[1]} channel(s), c_dim {want[2]}"
        )
    G = Generator(g_cfg).train()
    d_cfg = (
        source.D.config
        if source is not None and source.D is not None
        else DiscriminatorConfig(
            c_dim=dataset.c_dim,
            img_resolution=dataset.resolution,
            img_channels=dataset.channels,
            channel_base=g_cfg.channel_base,
            channel_max=g_cfg.channel_max,
            conv_clamp=g_cfg.conv_clamp,
            mbstd_group_size=spec.mbstd_group,
        )
    )
    D = Discriminator(d_cfg, freeze_layers=cfg.freeze_d).train()
    return G, D, source


def make_optimizers(cfg: TrainConfig, G, D) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam (0, 0.99) with lazy regularisation's lr/beta correction (Karras et al. 2020, app. B)."""
    opts = []
    for net, interval, on in ((G, cfg.pl_interval, cfg.spec.pl_weight > 0), (D, cfg.r1_interval, cfg.r1_gamma > 0)):
        ratio = interval / (interval + 1) if on else 1.0
        params = [p for p in net.parameters()]
        opts.append(torch.optim.Adam(params, lr=cfg.learning_rate * ratio, betas=(0.0, 0.99**ratio), eps=1e-8))
    return opts[0], opts[1]


def make_augment(cfg: TrainConfig):
    if cfg.aug == "none":
        return None
    from stylegen.training.augment import AUGMENT_PRESETS, AugmentPipe

    pipe = AugmentPipe(AUGMENT_PRESETS[cfg.aug_preset])
    pipe.p.fill_(cfg.aug_p)
    return pipe


def restore(st, source: ResumeSource) -> None:
    """Weights from the source; with our training state also optimizers, counters and augment p."""
    st.G.load_state_dict(source.G.state_dict())
    st.G_ema.load_state_dict(source.G_ema.state_dict())
    if source.D is not None:
        st.D.load_state_dict(source.D.state_dict())
    training = (source.snapshot or {}).get("training")
    if training is None:
        return
    st.G_opt.load_state_dict(training["G_opt"])
    st.D_opt.load_state_dict(training["D_opt"])
    st.step = int(training["step"])
    if st.ada is not None and training.get("ada") is not None:
        st.ada.load_state_dict(training["ada"])
    st.loss.pl_mean = torch.as_tensor(training["pl_mean"], dtype=torch.float32).clone()
    if st.augment is not None and training.get("augment_p") is not None:
        st.augment.p.fill_(float(training["augment_p"]))
