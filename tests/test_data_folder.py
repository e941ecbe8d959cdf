"""Tests of loading image folders (oodscope.data.load_folder / load(path))."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oodscope.data import load, load_folder
from oodscope.errors import DataError


def _gray(path: Path, value: int, size: tuple[int, int] = (6, 5)) -> np.ndarray:
    """Write a grayscale PNG of width x height ``size``; return its pixels."""
    arr = (np.arange(size[0] * size[1]).reshape(size[1], size[0]) + value).astype(np.uint8)
    Image.fromarray(arr, mode="L").save(path)
    return arr


def _rgb(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (6, 5), fmt: str | None = None):
    Image.new("RGB", size, color).save(path, format=fmt)


def test_class_subfolders(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "ant").mkdir()
    (tmp_path / "empty").mkdir()  # no images: not a class
    a = _gray(tmp_path / "cat" / "b.png", 10)
    b = _gray(tmp_path / "cat" / "a.PNG", 20)
    c = _gray(tmp_path / "ant" / "z.png", 30)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    ds = load(str(tmp_path))
    assert ds.classes == ["ant", "cat"]
    assert ds.labels.tolist() == [0, 1, 1] and ds.labels.dtype == np.int64
    assert ds.images.shape == (3, 1, 5, 6) and ds.images.dtype == np.uint8
    # files in sorted order: ant/z.png, cat/a.PNG, cat/b.png
    assert np.array_equal(ds.images[:, 0], np.stack([c, b, a]))
    assert ds.name == str(tmp_path)


def test_flat_folder_unlabelled(tmp_path):
    _rgb(tmp_path / "1.png", (255, 0, 0))
    _rgb(tmp_path / "2.jpg", (0, 0, 255))
    _rgb(tmp_path / "3.JPEG", (0, 255, 0), fmt="JPEG")
    ds = load_folder(tmp_path)
    assert ds.labels.tolist() == [-1, -1, -1] and ds.classes == []
    assert ds.images.shape == (3, 3, 5, 6)
    assert np.array_equal(ds.images[0, :, 0, 0], [255, 0, 0])
    # JPEG is lossy: colours approximately right
    assert ds.images[1, 2].mean() > 200 and ds.images[1, 0].mean() < 40
    assert ds.images[2, 1].mean() > 200


def test_split_ignored_and_pathlike(tmp_path):
    _gray(tmp_path / "a.png", 0)
    assert len(load(tmp_path, split="whatever")) == 1


def test_mixed_gray_and_rgb_becomes_rgb(tmp_path):
    g = _gray(tmp_path / "a.png", 50)
    _rgb(tmp_path / "b.png", (10, 20, 30))
    ds = load_folder(tmp_path)
    assert ds.images.shape == (2, 3, 5, 6)
    for ch in range(3):
        assert np.array_equal(ds.images[0, ch], g)
    assert ds.images[1, :, 0, 0].tolist() == [10, 20, 30]


def test_mode_1_and_16bit_are_gray(tmp_path):
    Image.fromarray(np.array([[0, 1], [1, 0]], dtype=bool)).save(tmp_path / "a.png")
    Image.fromarray(np.array([[0, 65535], [256, 32768]], dtype=np.uint16)).save(tmp_path / "b.png")
    ds = load_folder(tmp_path)
    assert ds.images.shape == (2, 1, 2, 2)
    assert ds.images[0, 0].tolist() == [[0, 255], [255, 0]]
    assert ds.images[1, 0].tolist() == [[0, 255], [1, 128]]


def test_force_channels(tmp_path):
    _rgb(tmp_path / "a.png", (255, 0, 0))
    ds = load_folder(tmp_path, channels=1)
    assert ds.images.shape == (1, 1, 5, 6) and ds.images[0, 0, 0, 0] == 76
    with pytest.raises(DataError, match="channels"):
        load_folder(tmp_path, channels=2)


def test_mismatched_sizes(tmp_path):
    _gray(tmp_path / "a.png", 0, size=(6, 5))
    _gray(tmp_path / "b.png", 0, size=(8, 8))
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    msg = str(err.value)
    assert "a.png" in msg and "b.png" in msg and "6x5" in msg and "8x8" in msg and "size=" in msg
    ds = load(str(tmp_path), size=(28, 28))
    assert ds.images.shape == (2, 1, 28, 28) and ds.images.dtype == np.uint8
    ds3 = load_folder(tmp_path, size=(10, 12), channels=3)
    assert ds3.images.shape == (2, 3, 10, 12)


def test_corrupt_file_named(tmp_path):
    _gray(tmp_path / "good.png", 0)
    (tmp_path / "bad.png").write_bytes(os.urandom(300))
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert str(tmp_path / "bad.png") in str(err.value)


def test_truncated_png_named(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "full.png").unlink()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        load(str(tmp_path))
    assert str(tmp_path / "x" / "cut.png") in str(err.value)


def test_empty_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"no images \(\.png/\.jpg/\.jpeg\) found in"):
        load(str(tmp_path))


def test_ambiguous_layout(tmp_path):
    (tmp_path / "c").mkdir()
    _gray(tmp_path / "c" / "a.png", 0)
    _gray(tmp_path / "top.png", 0)
    with pytest.raises(DataError, match="ambiguous"):
        load_folder(tmp_path)


def test_not_a_directory(tmp_path):
    f = tmp_path / "img.png"
    _gray(f, 0)
    with pytest.raises(DataError, match="not a directory"):
        load(str(f))
