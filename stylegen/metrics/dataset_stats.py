"""Features of a dataset's images, cached by the dataset's content and the feature network.

The cache key is the sha256 of every image file (names and bytes, in sorted order), the feature
network's identity (its kind and weight-file hash), the number of images used and the
resolution, so renaming, editing or adding one image, or changing the weights, recomputes.
Cache folder: $STYLEGEN_CACHE/dataset-features, default ~/.cache/stylegen/dataset-features.
Like NVIDIA's metrics, "the first N images" means the first N in file-name order.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegen.formats.atomic import atomic_path
from stylegen.formats.image_files import DatasetError, ImageFiles, image_to_array
from stylegen.metrics.features import FeatureNet

CACHE_VERSION = 1


def cache_dir() -> Path:
    """$STYLEGEN_CACHE/dataset-features, else ~/.cache/stylegen/dataset-features."""
    root = os.environ.get("STYLEGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "stylegen")
    return Path(root) / "dataset-features"


def image_names(path: str | os.PathLike) -> tuple[ImageFiles, list[str]]:
    """The folder/zip reader and its image files in sorted order; DatasetError if there are none."""
    src = ImageFiles(Path(path))
    names = src.images()
    if not names:
        raise DatasetError(f"{path}: no images found")
    return src, names


def content_hash(path: str | os.PathLike) -> str:
    """sha256 over (name, size, bytes) of every image file of a folder or zip, in sorted order."""
    src, names = image_names(path)
    h = hashlib.sha256()
    for name in names:
        data = src.read(name)
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def iter_batches(path: str | os.PathLike, resolution: int, max_items: int | None, batch: int) -> Iterator[torch.Tensor]:
    """uint8 RGB batches [B, 3, R, R] of the first `max_items` images (all when None)."""
    src, names = image_names(path)
    names = names[:max_items] if max_items is not None else names
    chunk = []
    for name in names:
        try:
            img = Image.open(io.BytesIO(src.read(name)))
            img.load()
        except Exception:  # PIL raises many types for corrupt data
            raise DatasetError(f"{path}: unreadable image {name}") from None
        if img.size != (resolution, resolution):
            raise DatasetError(
                f"{path}: {name} is {img.size[0]}x{img.size[1]}, the network makes {resolution}x{resolution} "
                f"(convert with: stylegen dataset {path} OUT.zip --resolution {resolution} --resize center-crop)"
            )
        chunk.append(image_to_array(img, 3))
        if len(chunk) == batch:
            yield torch.from_numpy(np.stack(chunk))
            chunk = []
    if chunk:
        yield torch.from_numpy(np.stack(chunk))


def dataset_features(
    path: str | os.PathLike,
    net: FeatureNet,
    resolution: int,
    max_items: int | None = None,
    batch: int = 32,
    device: torch.device | str = "cpu",
    progress: Callable[[str, int], object] | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """Features float32 [N, D] of the first `max_items` images of `path` (cached on disk).

    `progress(label, total)` returns a context manager with `update(n)` (e.g. a progress bar).
    """
    digest = content_hash(path)
    num = len(image_names(path)[1])
    num = min(num, max_items) if max_items is not None else num
    key_text = json.dumps([CACHE_VERSION, digest, net.identity, num, resolution])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    cached = cache_dir() / f"{key}.npz"
    if use_cache and cached.is_file():
        with np.load(cached) as data:
            if data["features"].shape == (num, net.dim):
                return data["features"]
    feats = []
    bar = progress(f"Dataset features ({net.kind})", num) if progress else nullcontext()
    with bar as b:
        for images in iter_batches(path, resolution, max_items, batch):
            feats.append(net(images.to(device)).cpu().numpy())
            if b is not None:
                b.update(len(images))
    features = np.concatenate(feats).astype(np.float32)
    if use_cache:
        _write_cache(cached, features, key_text)
    return features


def _write_cache(path: Path, features: np.ndarray, key_text: str) -> None:
    """Atomic write (temp file + rename); a cache that cannot be written is only skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, features=features, key=np.asarray(key_text))
    except OSError:
        pass
