"""scikit-learn's bundled 8x8 digits as an ImageSet (never touches the network).

``sklearn.datasets.load_digits`` ships 1797 images with values 0..16. They are
scaled to uint8 by ``round(v * 255 / 16)``. The data set has no official split,
so a deterministic stratified one is used: for each class, the first
``round(2/3 * n_class)`` indices (in the original order) form "train" and the
remaining ones form "test"; both splits keep the original order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oodscope.data.imageset import ImageSet
from oodscope.errors import DataError

DIGIT_CLASSES = [str(d) for d in range(10)]


def digits_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Sorted indices of ``split`` under the stratified first-two-thirds rule."""
    if split not in ("train", "test"):
        raise DataError(f"digits: unknown split {split!r}; use 'train' or 'test'")
    train = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_train = (2 * len(members) + 1) // 3
        train[members[:n_train]] = True
    return np.flatnonzero(train if split == "train" else ~train)


def read_digits(directory: Path | None, split: str) -> ImageSet:
    """The ``split`` of scikit-learn's digits; ``directory`` is unused (data is bundled)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    values = np.asarray(bunch.images).round().astype(np.int64)
    images = ((values * 255 + 8) // 16).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    idx = digits_split_indices(labels, split)
    return ImageSet(images[idx], labels[idx], list(DIGIT_CLASSES), "digits")
