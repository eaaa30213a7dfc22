"""Reading image files: a folder (recursive) or a zip of images, made square, as uint8 arrays.

Used by training datasets, the metrics' real-image statistics and projection targets.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from stylegen.errors import StylegenError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
RESIZE_MODES = ("center-crop", "pad", "stretch")


class DatasetError(StylegenError, ValueError):
    """A dataset that cannot be used as it is; the message names the files and the fix."""


class ImageFiles:
    """Uniform read access to the files of a folder or a zip."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self.zip = None
            files = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        elif path.is_file() and zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            files = [n for n in self.zip.namelist() if not n.endswith("/")]
        elif path.exists():
            raise DatasetError(f"{path}: not a folder or a zip file")
        else:
            raise DatasetError(f"{path}: no such folder or zip file")
        self.files = sorted(files)

    def images(self) -> list[str]:
        return [f for f in self.files if f.lower().endswith(EXTENSIONS)]

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        return (self.path / name).read_bytes()


def resize_image(img: Image.Image, resolution: int, mode: str | None) -> Image.Image:
    """Make img resolution x resolution: 'center-crop', 'pad' (with black), 'stretch'."""
    w, h = img.size
    if (w, h) == (resolution, resolution):
        return img
    if mode == "center-crop":
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    elif mode == "pad":
        s = max(w, h)
        canvas = Image.new(img.mode, (s, s))
        canvas.paste(img, ((s - w) // 2, (s - h) // 2))
        img = canvas
    elif mode != "stretch":
        raise DatasetError(f"resize mode must be one of {', '.join(RESIZE_MODES)}; got {mode!r}")
    return img.resize((resolution, resolution), Image.LANCZOS)


def image_to_array(img: Image.Image, channels: int) -> np.ndarray:
    """uint8 [C, H, W] (C = channels, 1 or 3); transparency composited on white."""
    if img.mode in ("RGBA", "LA", "P"):
        # Composite transparency on white (emoji, icons) rather than on black.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
