"""Readers for MNIST and EMNIST-letters from their gzip IDX files."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from oodscope.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx_gz
from oodscope.data.imageset import ImageSet
from oodscope.errors import DataError

MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
EMNIST_LETTERS_FILES: dict[str, tuple[str, str]] = {
    split: (
        f"emnist-letters-{split}-images-idx3-ubyte.gz",
        f"emnist-letters-{split}-labels-idx1-ubyte.gz",
    )
    for split in ("train", "test")
}
MNIST_CLASSES = [str(d) for d in range(10)]
LETTER_CLASSES = list(string.ascii_lowercase)


def read_mnist(directory: Path, split: str) -> ImageSet:
    """MNIST ``split`` from ``directory``: labels 0..9, classes "0".."9"."""
    images, labels, label_file = _read_pair(directory, MNIST_FILES, split, "mnist")
    _check_range(labels, 0, 9, label_file)
    return ImageSet(images[:, None], labels, list(MNIST_CLASSES), "mnist")


def read_emnist_letters(directory: Path, split: str) -> ImageSet:
    """EMNIST-letters ``split``: images transposed upright, labels 1..26 -> 0..25 ("a".."z")."""
    images, labels, label_file = _read_pair(directory, EMNIST_LETTERS_FILES, split, "emnist-letters")
    _check_range(labels, 1, 26, label_file)
    upright = np.ascontiguousarray(images.transpose(0, 2, 1))
    return ImageSet(upright[:, None], labels - 1, list(LETTER_CLASSES), "emnist-letters")


def _read_pair(
    directory: Path, files: dict[str, tuple[str, str]], split: str, name: str
) -> tuple[np.ndarray, np.ndarray, Path]:
    """Read and cross-check the image and label files of one split."""
    if split not in files:
        raise DataError(f"{name}: unknown split {split!r}; use 'train' or 'test'")
    image_file, label_file = (Path(directory) / f for f in files[split])
    images = read_idx_gz(image_file, IMAGES_MAGIC)
    labels = read_idx_gz(label_file, LABELS_MAGIC)
    if images.ndim != 3:
        raise DataError(f"{image_file}: expected N x H x W images, header gives shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{label_file}: expected a label vector, header gives shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels"
        )
    return images, labels.astype(np.int64), label_file


def _check_range(labels: np.ndarray, low: int, high: int, path: Path) -> None:
    """Raise DataError if a label lies outside ``low..high``."""
    if len(labels) and (labels.min() < low or labels.max() > high):
        raise DataError(
            f"{path}: labels must lie in {low}..{high}, found {labels.min()}..{labels.max()}"
        )
