"""The video tests' stand-in writer: `stylegen video` run in-process, its frames kept."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from stylegen.editing import video as video_lib
from stylegen.formats import video_files


class _Recorder:
    """Stands in for a video writer: keeps the frames (small tests only) and checks streaming."""

    def __init__(self, rendered):
        self.frames, self.rendered = [], rendered

    def append(self, frame):
        assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
        self.frames.append(frame.copy())
        assert len(self.rendered) == len(self.frames)  # written as soon as rendered


@pytest.fixture
def record(monkeypatch):
    """Run `stylegen video` in-process with its writer replaced; returns the recorder."""
    rendered = []
    recorder = _Recorder(rendered)
    to_numpy = video_lib.to_numpy_images
    monkeypatch.setattr(video_lib, "to_numpy_images", lambda img: rendered.append(1) or to_numpy(img))

    @contextlib.contextmanager
    def fake_open(path, fps):
        video_files.video_format(path)
        yield recorder

    monkeypatch.setattr(video_files, "open_video", fake_open)
    return recorder


def cells(frame, cols, size):
    """The grid row's cells of a frame, left to right."""
    return [frame[:, i * size : (i + 1) * size] for i in range(cols)]
