"""Training configuration: one frozen dataclass, presets for 2-core CPUs and the papers' GPU configs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stylegen.errors import InputError


@dataclass(frozen=True)
class Preset:
    """Network size and recipe of a named configuration."""

    channel_base: int  # feature maps: min(channel_base // r, channel_max); StyleGAN3-R doubles G's (not D's)
    channel_max: int
    mapping_layers: int  # generator mapping depth
    z_dim: int  # latent size (= w_dim)
    batch: int  # global minibatch
    gamma: float | None  # R1 weight; None: r**2 / 32768 at resolution r (`default_gamma`)
    lr: float  # Adam learning rate of G (and of D unless d_lr is set)
    ema_kimg: float  # G_ema half-life in thousands of images (per 32 images of batch if per_batch32)
    ema_rampup: float | None  # half-life at most this fraction of the images seen so far
    mbstd_group: int  # minibatch std-dev group size
    pl_weight: float  # path-length regularisation weight (0 = off)
    style_mixing_prob: float  # mixing regularisation probability
    conv_clamp: float | None  # clamp conv outputs (NVIDIA uses 256 with fp16 layers)
    description: str
    architecture: str = "stylegan2"  # generator: stylegan2 | stylegan3-t | stylegan3-r (D: StyleGAN2's resnet)
    d_lr: float | None = None  # Adam learning rate of D (None: lr)
    per_batch32: bool = False  # ema_kimg and blur_fade_kimg are for batch 32 and scale with the batch
    blur_sigma: float = 0.0  # D's inputs (real and fake) blurred with this Gaussian sigma (px) at kimg 0 ...
    blur_fade_kimg: float = 0.0  # ... fading linearly to no blur over this many kimg (per 32 if per_batch32)
    sg3_layers: int = 14  # StyleGAN3 synthesis layers before the RGB layer (NVIDIA's num_layers)

    @property
    def is_stylegan3(self) -> bool:
        return self.architecture.startswith("stylegan3")


ARCHITECTURES = ("stylegan2", "stylegan3-t", "stylegan3-r")


def default_gamma(resolution: int) -> float:
    """R1 weight r**2 / 32768: NVIDIA's recommended StyleGAN3 values at batch 32 (stylegan3
    docs/configs.md: 0.5 at 128, 2 at 256, 8 at 512, 32 at 1024: quadratic in the resolution)."""
    return resolution**2 / 32768


def _stylegan3(architecture: str, **kw) -> Preset:
    """NVIDIA's stylegan3 train.py recipe: 2 mapping layers, G lr 0.0025, D lr 0.002, no path-length
    or mixing regularisation, EMA half-life batch * 10 / 32 kimg (ramp-up 0.05), gamma from the
    resolution; -r also blurs D's inputs (sigma 10 px fading out over batch * 200 / 32 kimg)."""
    blur = dict(blur_sigma=10.0, blur_fade_kimg=200.0) if architecture == "stylegan3-r" else {}
    base = dict(
        mapping_layers=2,
        gamma=None,
        lr=0.0025,
        d_lr=0.002,
        ema_kimg=10.0,
        ema_rampup=0.05,
        mbstd_group=4,
        pl_weight=0.0,
        style_mixing_prob=0.0,
        architecture=architecture,
        per_batch32=True,
        **blur,
    )
    return Preset(**{**base, **kw})


# CPU presets were chosen by measuring kimg/hour and sample quality on 2 cores (docs/training.md).
# Paper presets follow NVIDIA's stylegan2-ada-pytorch `--cfg` table.
PRESETS: dict[str, Preset] = {
    "cpu32": Preset(
        channel_base=2048,
        channel_max=128,
        mapping_layers=2,
        z_dim=128,
        batch=16,
        gamma=0.1,
        lr=0.0025,
        ema_kimg=2.5,
        ema_rampup=0.05,
        mbstd_group=4,
        pl_weight=0.0,
        style_mixing_prob=0.0,
        conv_clamp=None,
        description="32x32 on a 2-core CPU: small nets, no path-length reg",
    ),
    "cpu64": Preset(
        channel_base=4096,
        channel_max=256,
        mapping_layers=2,
        z_dim=256,
        batch=16,
        gamma=0.2,
        lr=0.0025,
        ema_kimg=5.0,
        ema_rampup=0.05,
        mbstd_group=4,
        pl_weight=0.0,
        style_mixing_prob=0.0,
        conv_clamp=None,
        description="64x64 on a 2-core CPU: small nets, no path-length reg",
    ),
    "paper256": Preset(
        channel_base=16384,
        channel_max=512,
        mapping_layers=8,
        z_dim=512,
        batch=64,
        gamma=1.0,
        lr=0.0025,
        ema_kimg=20.0,
        ema_rampup=None,
        mbstd_group=8,
        pl_weight=2.0,
        style_mixing_prob=0.9,
        conv_clamp=256,
        description="StyleGAN2 paper config for 256x256 (8 GPUs)",
    ),
    "paper512": Preset(
        channel_base=32768,
        channel_max=512,
        mapping_layers=8,
        z_dim=512,
        batch=64,
        gamma=0.5,
        lr=0.0025,
        ema_kimg=20.0,
        ema_rampup=None,
        mbstd_group=8,
        pl_weight=2.0,
        style_mixing_prob=0.9,
        conv_clamp=256,
        description="StyleGAN2 paper config for 512x512 (8 GPUs)",
    ),
    "paper1024": Preset(
        channel_base=32768,
        channel_max=512,
        mapping_layers=8,
        z_dim=512,
        batch=32,
        gamma=2.0,
        lr=0.002,
        ema_kimg=10.0,
        ema_rampup=None,
        mbstd_group=4,
        pl_weight=2.0,
        style_mixing_prob=0.9,
        conv_clamp=256,
        description="StyleGAN2 paper config for 1024x1024 (8 GPUs)",
    ),
    "stylegan2": Preset(
        channel_base=32768,
        channel_max=512,
        mapping_layers=8,
        z_dim=512,
        batch=32,
        gamma=10.0,
        lr=0.002,
        ema_kimg=10.0,
        ema_rampup=None,
        mbstd_group=4,
        pl_weight=2.0,
        style_mixing_prob=0.9,
        conv_clamp=256,
        description="StyleGAN2 config F",
    ),
    "stylegan3-t": _stylegan3(
        "stylegan3-t",
        channel_base=32768,
        channel_max=512,
        z_dim=512,
        batch=32,
        conv_clamp=256,
        description="StyleGAN3-T (translation equivariant), NVIDIA's recipe (8 GPUs)",
    ),
    "stylegan3-r": _stylegan3(
        "stylegan3-r",
        channel_base=32768,
        channel_max=512,
        z_dim=512,
        batch=32,
        conv_clamp=256,
        description="StyleGAN3-R (translation and rotation equivariant), NVIDIA's recipe (8 GPUs)",
    ),
    "stylegan3-t-cpu32": _stylegan3(
        "stylegan3-t",
        channel_base=1024,
        channel_max=64,
        z_dim=128,
        batch=16,
        conv_clamp=None,
        description="StyleGAN3-T at 32x32 on a 2-core CPU: small nets",
    ),
    "stylegan3-r-cpu32": _stylegan3(
        "stylegan3-r",
        channel_base=1024,
        channel_max=64,
        z_dim=128,
        batch=16,
        conv_clamp=None,
        description="StyleGAN3-R at 32x32 on a 2-core CPU: small nets",
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    data: str  # folder or zip of images
    outdir: str  # run directory: snapshots, stats.jsonl, fakes PNGs, config.json
    preset: str = "cpu32"  # key of PRESETS
    kimg: float = 100.0  # train until this many thousand real images were shown
    batch: int | None = None  # global minibatch (default: the preset's)
    batch_gpu: int | None = None  # images per process per round (default: batch // processes)
    gamma: float | None = None  # R1 weight (default: the preset's, or `default_gamma` of the resolution)
    aug: str = "ada"  # ada | fixed | none
    aug_p: float = 0.0  # initial (ada) or fixed (fixed) augmentation probability
    aug_preset: str = "bgc"  # which transforms (stylegen.training.augment.AUGMENT_PRESETS)
    ada_target: float = 0.6  # target of E[sign(D(real))]
    ada_interval: int = 4  # adjust p every this many minibatches
    ada_kimg: float = 500.0  # p can go 0 -> 1 in this many kimg
    cond: bool = False  # condition on dataset.json labels
    mirror: bool = False  # add x-flipped copies of the images
    resolution: int | None = None  # resize target (default: the images' size)
    resize: str | None = None  # center-crop | pad | stretch
    skip_bad: bool = False  # skip unreadable images
    snap: float = 10.0  # snapshot every this many kimg
    keep: int = 3  # keep this many newest snapshots (0 = all)
    resume: str | None = None  # snapshot or NVIDIA pickle to start from, or 'auto'
    freeze_d: int = 0  # freeze this many discriminator layers (fine-tuning)
    seed: int = 0  # global seed: weights, latents, data order, augmentation
    lr: float | None = None  # Adam learning rate of G and D (default: the preset's)
    dlr: float | None = None  # Adam learning rate of D (default: lr if given, else the preset's)
    cbase: int | None = None  # channel_base override (default: the preset's)
    cmax: int | None = None  # channel_max override
    map_depth: int | None = None  # generator mapping layers override
    r1_interval: int = 16  # lazy R1 every this many minibatches
    pl_interval: int = 4  # lazy path-length regularisation every this many minibatches
    grid: int = 8  # fakes grid is grid x grid images

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise InputError(f"--cfg {self.preset!r} is not one of {', '.join(PRESETS)}")
        if self.aug not in ("ada", "fixed", "none"):
            raise InputError(f"--aug must be ada, fixed or none; got {self.aug!r}")
        if self.kimg <= 0 or self.snap <= 0:
            raise InputError("--kimg and --snap must be positive")
        if not 0 <= self.aug_p <= 1:
            raise InputError(f"--aug-p must be in [0, 1]; got {self.aug_p}")

    @property
    def spec(self) -> Preset:
        """The preset with this run's overrides applied."""
        spec = PRESETS[self.preset]
        over = {"channel_base": self.cbase, "channel_max": self.cmax, "mapping_layers": self.map_depth}
        return dataclasses.replace(spec, **{k: v for k, v in over.items() if v is not None})

    @property
    def batch_size(self) -> int:
        return self.batch or self.spec.batch

    def r1_gamma(self, resolution: int) -> float:
        """R1 weight for training at `resolution`: --gamma, the preset's, or `default_gamma`."""
        for gamma in (self.gamma, self.spec.gamma):
            if gamma is not None:
                return gamma
        return default_gamma(resolution)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else self.spec.lr

    @property
    def d_learning_rate(self) -> float:
        for lr in (self.dlr, self.lr, self.spec.d_lr):
            if lr is not None:
                return lr
        return self.spec.lr

    def _per_batch(self, kimg: float) -> float:
        return kimg * self.batch_size / 32 if self.spec.per_batch32 else kimg

    @property
    def ema_kimg(self) -> float:
        """G_ema half-life in kimg (NVIDIA's stylegan3 recipe: batch * 10 / 32)."""
        return self._per_batch(self.spec.ema_kimg)

    @property
    def blur_fade_kimg(self) -> float:
        """kimg over which D's input blur fades out (NVIDIA's stylegan3-r recipe: batch * 200 / 32)."""
        return self._per_batch(self.spec.blur_fade_kimg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **kw) -> TrainConfig:
        return dataclasses.replace(self, **kw)
