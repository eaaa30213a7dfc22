"""Writing videos one frame at a time: MP4 through imageio-ffmpeg, GIF through Pillow.

Both writers take uint8 [H, W, 3] frames through `append` and keep none of them: memory stays
flat in the number of frames. The file appears atomically (`atomic_path`) when the writer is
closed without an error.

MP4: H.264 (libx264, yuv420p, so colours are subsampled and lossy), by the ffmpeg binary that the
imageio-ffmpeg wheel ships. GIF: each frame quantized to its own 256-colour palette (a local
colour table), looping forever; GIF delays count in 1/100 s, so `fps` is rounded to
100 / round(100 / fps) (30 fps plays at 33.3 fps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stylegen.errors import InputError, StylegenError
from stylegen.formats.atomic import atomic_path

VIDEO_SUFFIXES = (".mp4", ".gif")


def video_format(path: str | Path) -> str:
    """'mp4' or 'gif' from the file name; InputError naming the file for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(f"{path}: unknown video type {suffix or '(no extension)'!r}; use a .mp4 or .gif file name")
    return suffix[1:]


class Mp4Writer:
    """H.264 MP4 through imageio's ffmpeg plugin; frames are piped to ffmpeg as they come."""

    def __init__(self, path: Path, fps: float):
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary)
        except ImportError as e:
            raise StylegenError(
                f"writing MP4 needs imageio and imageio-ffmpeg ({e}); pip install 'imageio>=2.30' "
                "'imageio-ffmpeg>=0.5', or write a .gif"
            ) from e
        # macro_block_size=1: never rescale; our frames are grids of power-of-two images, even-sized
        self._writer = imageio.get_writer(
            str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8, macro_block_size=1
        )

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(frame)

    def close(self) -> None:
        self._writer.close()


class GifWriter:
    """Animated GIF written block by block with Pillow's GIF encoder (Pillow's own save_all keeps
    every frame until the end, to merge duplicates, so it is not used)."""

    def __init__(self, path: Path, fps: float):
        self._file = open(path, "wb")
        self._delay_ms = 10 * max(1, round(100 / fps))
        self._started = False

    def append(self, frame: np.ndarray) -> None:
        from PIL import GifImagePlugin, Image

        im = Image.fromarray(frame, "RGB").quantize(256)
        if not self._started:  # the screen descriptor and the NETSCAPE loop block, once
            header, _ = GifImagePlugin.getheader(im.copy(), info={"loop": 0, "duration": self._delay_ms})
            self._file.write(b"".join(header))
            self._started = True
        for block in GifImagePlugin.getdata(im, duration=self._delay_ms, include_color_table=True):
            self._file.write(block)

    def close(self) -> None:
        try:
            if self._started:
                self._file.write(b";")  # GIF trailer
        finally:
            self._file.close()


@contextlib.contextmanager
def open_video(path: str | Path, fps: float) -> Iterator[Mp4Writer | GifWriter]:
    """A writer for `path` (.mp4 or .gif, `video_format`); the file replaces `path` when the block
    ends without an error, else nothing is left behind."""
    kind = video_format(path)
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    with atomic_path(path, suffix=f".{kind}") as tmp:
        writer = (Mp4Writer if kind == "mp4" else GifWriter)(tmp, fps)
        try:
            yield writer
        finally:
            writer.close()
