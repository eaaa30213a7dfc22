"""Building the networks, optimizers and augmentation of a run, and resuming one."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegen.errors import InputError
from stylegen.formats.network_file import NetworkFile, read_network_file
from stylegen.formats.snapshot import NetworkLoadError
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig
from stylegen.networks.sg3_generator import is_stylegan3
from stylegen.training.config import TrainConfig
from stylegen.training.dataset import ImageDataset


@dataclass
class ResumeSource:
    path: Path
    snapshot: dict | None  # our container with 'training' (an exact resume), else None (weights only)
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
    """Read every network of the file: our training snapshot resumes exactly, anything else that
    `load_network` reads (our other snapshots, NVIDIA's pickles, rosinality checkpoints, ...)
    gives weights only."""
    source = read_network_file(path)
    generator = source.G_ema or source.G
    if generator is not None and is_stylegan3(generator):
        raise InputError(f"--resume {path}: training StyleGAN3 networks is not supported yet")
    snapshot = source.snapshot
    exact = snapshot is not None and snapshot.get("training") is not None and len(source.networks) == 3
    if not exact:
        _note(
            f"{path} ({source.source_format}): resuming weights only (no optimizer state, counters): "
            "the optimizers, the kimg counter and augment p start fresh"
        )
        snapshot = None  # restore() takes nothing but the weights
    for note in source.source_notes:
        _note(note)
    G, G_ema = source.G, source.G_ema
    if G is None:
        _note(f"{_missing(source, 'G')}: G starts from G_ema's weights")
        G = G_ema
    if G_ema is None:
        _note(f"{_missing(source, 'G_ema')}: G_ema starts from G's weights")
        G_ema = G
    D = source.D
    if D is None:
        _note(f"{_missing(source, 'D')}: the discriminator starts from scratch")
    return ResumeSource(path, snapshot, G, G_ema, D)


def _missing(source: NetworkFile, which: str) -> str:
    problem = source.problems.get(which)
    return f"{which} cannot be used ({problem})" if problem else f"the file has no {which}"


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


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
