"""Building the networks, optimizers and augmentation of a run, and resuming one."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stylegen.errors import InputError
from stylegen.formats.network_file import NetworkFile, read_network_file
from stylegen.formats.snapshot import NetworkLoadError
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig
from stylegen.networks.sg3_design import design_config3, init_generator3, train_preset_kwargs
from stylegen.networks.sg3_generator import Generator3, Generator3Config, is_stylegan3
from stylegen.training.config import PRESETS, TrainConfig
from stylegen.training.dataset import ImageDataset


@dataclass
class ResumeSource:
    path: Path
    snapshot: dict | None  # our container with 'training' (an exact resume), else None (weights only)
    G: Generator | Generator3
    G_ema: Generator | Generator3
    D: Discriminator | None  # None: the discriminator starts fresh
    notes: list[str] = field(default_factory=list)  # printed once the file is known to fit the run


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
    snapshot, notes = source.snapshot, []
    exact = snapshot is not None and snapshot.get("training") is not None and len(source.networks) == 3
    if not exact:
        notes.append(
            f"{path} ({source.source_format}): resuming weights only (no optimizer state, counters): "
            "the optimizers, the kimg counter and augment p start fresh"
        )
        snapshot = None  # restore() takes nothing but the weights
    notes += source.source_notes
    G, G_ema = source.G, source.G_ema
    if G is None:
        notes.append(f"{_missing(source, 'G')}: G starts from G_ema's weights")
        G = G_ema
    if G_ema is None:
        notes.append(f"{_missing(source, 'G_ema')}: G_ema starts from G's weights")
        G_ema = G
    D = source.D
    if D is None:
        notes.append(f"{_missing(source, 'D')}: the discriminator starts from scratch")
    return ResumeSource(path, snapshot, G, G_ema, D, notes)


def _missing(source: NetworkFile, which: str) -> str:
    problem = source.problems.get(which)
    return f"{which} cannot be used ({problem})" if problem else f"the file has no {which}"


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def architecture_of(G: torch.nn.Module) -> str:
    """'stylegan2', 'stylegan3-t' or 'stylegan3-r': what a preset's `architecture` must be to train G."""
    return G.config.architecture if is_stylegan3(G) else "stylegan2"


def _check_source(cfg: TrainConfig, source: ResumeSource, dataset: ImageDataset) -> None:
    """InputError unless the preset trains this kind of generator and the dataset fits it."""
    have, want = architecture_of(source.G), cfg.spec.architecture
    if have != want:
        fits = " or ".join(name for name, p in PRESETS.items() if p.architecture == have)
        raise InputError(
            f"--resume {source.path}: the file holds a {have} generator, --cfg {cfg.preset} trains {want}; "
            f"use --cfg {fits}"
        )
    g_cfg = source.G.config
    want_data = (dataset.resolution, dataset.channels, dataset.c_dim)
    have_net = (g_cfg.img_resolution, g_cfg.img_channels, g_cfg.c_dim)
    if want_data != have_net:
        raise InputError(
            f"--resume {source.path}: network is {have_net[0]}px, {have_net[1]} channel(s), c_dim {have_net[2]}; "
            f"the dataset is {want_data[0]}px, {want_data[1]} channel(s), c_dim {want_data[2]}"
        )


def _stylegan3_kwargs(cfg: TrainConfig) -> dict:
    """NVIDIA's train.py adjustments: -R doubles G's feature maps (D keeps the preset's) next to
    its 1x1 convolutions and radial filters; the magnitude EMAs' decay follows the batch."""
    spec = cfg.spec
    return train_preset_kwargs(
        spec.architecture,
        cbase=spec.channel_base,
        cmax=spec.channel_max,
        batch_size=cfg.batch_size,
        map_depth=spec.mapping_layers,
    )


def stylegan3_config(cfg: TrainConfig, dataset: ImageDataset) -> Generator3Config:
    """A new StyleGAN3 generator for the dataset with the preset's sizes and NVIDIA's train.py settings."""
    spec = cfg.spec
    return design_config3(
        **_stylegan3_kwargs(cfg),
        z_dim=spec.z_dim,
        c_dim=dataset.c_dim,
        w_dim=spec.z_dim,
        img_resolution=dataset.resolution,
        img_channels=dataset.channels,
        num_layers=spec.sg3_layers,
        conv_clamp=spec.conv_clamp,
    )


def _generator(cfg: TrainConfig, dataset: ImageDataset, source: ResumeSource | None) -> torch.nn.Module:
    """G in training mode: the resumed network's architecture (weights come in `restore`), else the preset's."""
    spec = cfg.spec
    if source is not None and is_stylegan3(source.G):
        # The run's batch sets the magnitude EMAs' decay, as when NVIDIA rebuilds G from its kwargs.
        g_cfg, beta = source.G.config, _stylegan3_kwargs(cfg)["magnitude_ema_beta"]
        layers = tuple(dataclasses.replace(s, magnitude_ema_beta=beta) for s in g_cfg.layers)
        return Generator3(dataclasses.replace(g_cfg, layers=layers)).train()
    if source is not None:
        return Generator(source.G.config).train()
    if spec.is_stylegan3:
        return init_generator3(stylegan3_config(cfg, dataset), seed=cfg.seed).train()
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
    return Generator(g_cfg).train()


def build_networks(
    cfg: TrainConfig, dataset: ImageDataset
) -> tuple[torch.nn.Module, Discriminator, ResumeSource | None]:
    """G and D for the dataset, from the preset or from the network being resumed."""
    spec = cfg.spec
    path = _resume_path(cfg)
    source = _load_source(path) if path is not None else None
    if source is not None:
        _check_source(cfg, source, dataset)
        for note in source.notes:
            _note(note)
    G = _generator(cfg, dataset, source)
    if source is not None and source.D is not None:
        d_cfg = source.D.config
    else:  # StyleGAN3: the preset's sizes, which -R doubles for G only; StyleGAN2: G's sizes
        sizes = spec if spec.is_stylegan3 else G.config
        d_cfg = DiscriminatorConfig(
            c_dim=dataset.c_dim,
            img_resolution=dataset.resolution,
            img_channels=dataset.channels,
            channel_base=sizes.channel_base,
            channel_max=sizes.channel_max,
            conv_clamp=sizes.conv_clamp,
            mbstd_group_size=spec.mbstd_group,
        )
    D = Discriminator(d_cfg, freeze_layers=cfg.freeze_d).train()
    return G, D, source


def make_optimizers(cfg: TrainConfig, G, D, r1_gamma: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam (0, 0.99) with lazy regularisation's lr/beta correction (Karras et al. 2020, app. B)."""
    opts = []
    for net, lr, interval, on in (
        (G, cfg.learning_rate, cfg.pl_interval, cfg.spec.pl_weight > 0),
        (D, cfg.d_learning_rate, cfg.r1_interval, r1_gamma > 0),
    ):
        ratio = interval / (interval + 1) if on else 1.0
        params = [p for p in net.parameters()]
        opts.append(torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8))
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
    if training.get("blur_init_sigma") is not None:  # a fine-tuning run keeps its blur off
        st.loss.cfg = dataclasses.replace(st.loss.cfg, blur_init_sigma=float(training["blur_init_sigma"]))
    if st.augment is not None and training.get("augment_p") is not None:
        st.augment.p.fill_(float(training["augment_p"]))
