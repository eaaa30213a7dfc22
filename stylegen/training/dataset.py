"""Image datasets: a folder (recursive) or a zip of PNG/JPEG/WebP images, optional labels.

Labels follow NVIDIA's `dataset.json`: `{"labels": [["relative/path.png", class_index], ...]}`
(an int class or a list of floats per image). Every image must be square and of one
resolution unless a resize mode is given; corrupt files are named, or skipped and counted.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegen.formats.atomic import atomic_path
from stylegen.formats.image_files import (
    EXTENSIONS,
    RESIZE_MODES,
    DatasetError,
    ImageFiles,
    image_to_array,
    resize_image,
)


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass(frozen=True)
class DatasetOptions:
    resolution: int | None = None  # target size; None = the size of the images (all equal)
    resize: str | None = None  # None (refuse mismatched sizes) | center-crop | pad | stretch
    channels: int | None = None  # 1 or 3; None = 1 if every image is grayscale, else 3
    skip_bad: bool = False  # skip unreadable images (counted) instead of failing
    use_labels: bool = False  # read dataset.json labels (required to exist then)


def load_images(path: str | os.PathLike, opts: DatasetOptions) -> tuple[torch.Tensor, list[str], list[str]]:
    """Decode every image: (uint8 [N, C, R, R], names kept, names skipped as unreadable)."""
    src = ImageFiles(Path(path))
    names = src.images()
    if not names:
        raise DatasetError(f"{path}: no images found ({', '.join(EXTENSIONS)})")
    decoded, bad = [], []
    for name in names:
        try:
            img = Image.open(io.BytesIO(src.read(name)))
            img.load()
            decoded.append((name, img))
        except Exception:  # PIL raises many types for corrupt data
            bad.append(name)
    if bad and not opts.skip_bad:
        raise DatasetError(f"{path}: {len(bad)} unreadable image(s): {_names(bad)} (use --skip-bad to skip them)")
    if not decoded:
        raise DatasetError(f"{path}: no readable images")
    res = opts.resolution or decoded[0][1].size[0]
    if res < 4 or res & (res - 1):
        raise DatasetError(f"{path}: resolution {res} is not a power of two >= 4 (use --resolution and --resize)")
    wrong = [f"{n} ({im.size[0]}x{im.size[1]})" for n, im in decoded if im.size != (res, res)]
    if wrong and opts.resize is None:
        raise DatasetError(
            f"{path}: {len(wrong)} of {len(decoded)} image(s) are not {res}x{res}: {_names(wrong)} "
            f"(use --resize {'|'.join(RESIZE_MODES)})"
        )
    channels = opts.channels or (1 if all(im.mode in ("L", "1", "I;16") for _, im in decoded) else 3)
    arrays = [image_to_array(resize_image(im, res, opts.resize), channels) for _, im in decoded]
    return torch.from_numpy(np.stack(arrays)), [n for n, _ in decoded], bad


def load_labels(path: str | os.PathLike, names: list[str]) -> torch.Tensor:
    """Labels of `names` from dataset.json: one-hot float32 [N, c_dim] for ints, else the vectors."""
    src = ImageFiles(Path(path))
    if "dataset.json" not in src.files:
        raise DatasetError(f"{path}: --cond needs a dataset.json with labels")
    try:
        labels = dict(json.loads(src.read("dataset.json"))["labels"])
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(
            f'{path}/dataset.json: not NVIDIA\'s format {{"labels": [[name, label], ...]}} ({e})'
        ) from None
    missing = [n for n in names if n not in labels]
    if missing:
        raise DatasetError(f"{path}/dataset.json: no label for {len(missing)} image(s): {_names(missing)}")
    values = [labels[n] for n in names]
    if all(isinstance(v, int) for v in values):
        if min(values) < 0:
            raise DatasetError(f"{path}/dataset.json: negative class index")
        return torch.nn.functional.one_hot(torch.tensor(values), max(values) + 1).float()
    try:
        return torch.tensor(values, dtype=torch.float32).reshape(len(names), -1)
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{path}/dataset.json: labels must be ints or equal-length float lists ({e})") from None


class ImageDataset(torch.utils.data.Dataset):
    """In-memory uint8 images [C, R, R] with labels; `mirror` doubles it with x-flips."""

    def __init__(self, path: str | os.PathLike, opts: DatasetOptions = DatasetOptions(), mirror: bool = False):
        self.path = str(path)
        self.images, self.names, self.skipped = load_images(path, opts)
        self.labels = load_labels(path, self.names) if opts.use_labels else torch.zeros([len(self.names), 0])
        self.mirror = mirror

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def c_dim(self) -> int:
        return self.labels.shape[1]

    def __len__(self) -> int:
        return len(self.names) * (2 if self.mirror else 1)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.names)
        img = self.images[idx % n]
        if idx >= n:
            img = img.flip(-1)
        return img, self.labels[idx % n]


def write_image_zip(
    images: Iterable[Image.Image],
    dest: str | os.PathLike,
    labels: Sequence[int] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> int:
    """Write PIL images as NVIDIA's dataset zip (`00000/img00000000.png`, ...), atomically.

    labels: one class index per image (into dataset.json), or None. extra_files: more members,
    e.g. `provenance.json`; loaders skip them as they are not images. Every member carries a
    fixed timestamp, so equal images give a byte-identical zip. Returns the number of images.
    """
    pairs = []
    with atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            count = 0
            for i, img in enumerate(images):
                name = f"{i // 1000:05d}/img{i:08d}.png"
                buf = io.BytesIO()
                img.save(buf, format="png", compress_level=6)
                _write_member(zf, name, buf.getvalue())
                if labels is not None:
                    pairs.append([name, int(labels[i])])
                count += 1
            _write_member(zf, "dataset.json", json.dumps({"labels": pairs or None}).encode())
            for name, data in (extra_files or {}).items():
                _write_member(zf, name, data)
    return count


def _write_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible: no wall clock
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def write_zip(dataset: ImageDataset, dest: str | os.PathLike) -> None:
    """Write the (resized) images and their labels as NVIDIA's dataset zip, atomically."""

    def to_pil(img: torch.Tensor) -> Image.Image:
        arr = img.numpy()
        return Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))

    labels = [int(label.argmax()) for label in dataset.labels] if dataset.c_dim else None
    write_image_zip((to_pil(img) for img in dataset.images), dest, labels)
