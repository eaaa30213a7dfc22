"""Datasets: folders and zips, labels, size checks, corrupt files, resize modes."""

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from stylegen.training.dataset import DatasetError, DatasetOptions, ImageDataset, resize_image, write_zip


def _save(path, size=(8, 8), mode="RGB", value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 2 * value % 256, 3 * value % 256)).save(path)


def test_folder_recursive_sorted_and_values(tmp_path):
    _save(tmp_path / "b" / "x.png", value=20)
    _save(tmp_path / "a.jpg", value=10)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageDataset(tmp_path)
    assert ds.names == ["a.jpg", "b/x.png"]
    assert ds.images.shape == (2, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.images[1, :, 0, 0].tolist() == [20, 40, 60]  # PNG is lossless


def test_grayscale_detected_and_mirror(tmp_path):
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(img).save(tmp_path / "g.png")
    ds = ImageDataset(tmp_path, mirror=True)
    assert ds.channels == 1 and len(ds) == 2
    assert torch.equal(ds[1][0][0], torch.from_numpy(img[:, ::-1].copy()))


def test_wrong_sizes_named_unless_resized(tmp_path):
    _save(tmp_path / "ok.png")
    _save(tmp_path / "wide.png", size=(12, 8))
    with pytest.raises(DatasetError, match=r"1 of 2 image\(s\) are not 8x8: wide.png \(12x8\)"):
        ImageDataset(tmp_path)
    for mode in ("center-crop", "pad", "stretch"):
        ds = ImageDataset(tmp_path, DatasetOptions(resize=mode))
        assert ds.images.shape == (2, 3, 8, 8)


def test_resize_modes_geometry():
    img = Image.new("L", (8, 4), 255)
    padded = np.asarray(resize_image(img, 4, "pad")).astype(int)
    assert padded[0].mean() < 128 < padded[1:3].mean()  # black bars above and below
    assert np.asarray(resize_image(img, 4, "center-crop")).min() == 255
    assert resize_image(img, 4, "stretch").size == (4, 4)


def test_corrupt_named_or_skipped(tmp_path):
    _save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match="1 unreadable image.*bad.png.*--skip-bad"):
        ImageDataset(tmp_path)
    ds = ImageDataset(tmp_path, DatasetOptions(skip_bad=True))
    assert ds.names == ["good.png"] and ds.skipped == ["bad.png"]


def test_empty_and_missing(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        ImageDataset(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        ImageDataset(tmp_path / "nope")


def test_labels_and_zip_round_trip(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _save(src / f"{i}.png", value=i * 50)
    (src / "dataset.json").write_text(json.dumps({"labels": [["0.png", 2], ["1.png", 0], ["2.png", 1]]}))
    ds = ImageDataset(src, DatasetOptions(use_labels=True))
    assert ds.labels.argmax(1).tolist() == [2, 0, 1] and ds.c_dim == 3
    write_zip(ds, tmp_path / "d.zip")
    assert zipfile.is_zipfile(tmp_path / "d.zip")
    again = ImageDataset(tmp_path / "d.zip", DatasetOptions(use_labels=True))
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)


def test_bad_labels(tmp_path):
    _save(tmp_path / "a.png")
    with pytest.raises(DatasetError, match="needs a dataset.json"):
        ImageDataset(tmp_path, DatasetOptions(use_labels=True))
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not NVIDIA's format"):
        ImageDataset(tmp_path, DatasetOptions(use_labels=True))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["other.png", 1]]}))
    with pytest.raises(DatasetError, match="no label for 1 image"):
        ImageDataset(tmp_path, DatasetOptions(use_labels=True))
