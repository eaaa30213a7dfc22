"""Writing generated images: uint8 conversion, PNG files (atomic), grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegen.formats.atomic import atomic_path
from stylegen.networks.generator import to_uint8


def to_numpy_images(img: torch.Tensor) -> np.ndarray:
    """Generator output [N, C, H, W] in ~[-1, 1] -> uint8 [N, H, W, C] via `to_uint8`."""
    return to_uint8(img.detach()).cpu().numpy()


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write one uint8 [H, W, C] image (C=1 grayscale, 3 RGB, 4 RGBA) atomically."""
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    channels = image.shape[2]
    if channels not in modes:
        raise ValueError(f"cannot write a {channels}-channel image as PNG (1, 3 or 4 channels)")
    pixels = image[:, :, 0] if channels == 1 else image
    with atomic_path(path) as tmp:
        Image.fromarray(pixels, modes[channels]).save(str(tmp), format="png")


def make_grid(images: list[np.ndarray | None], cols: int | None = None, fill: int = 255) -> np.ndarray:
    """Tile equally sized uint8 [H, W, C] images row-major into one image; None cells are `fill`.

    `cols` defaults to ceil(sqrt(n)). No padding between cells, so the grid is exactly
    (rows * H) x (cols * W).
    """
    shape = next(im.shape for im in images if im is not None)
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    h, w, c = shape
    grid = np.full([rows * h, cols * w, c], fill, dtype=np.uint8)
    for k, im in enumerate(images):
        if im is not None:
            r, q = divmod(k, cols)
            grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = im
    return grid
