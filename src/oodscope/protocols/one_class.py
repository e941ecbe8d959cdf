"""The one-class protocol: one class is in-distribution, every other class is out-of-distribution."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from oodscope.data import ImageSet, load
from oodscope.errors import DataError


@dataclass
class OneClassSplit:
    """Training and test data of one one-class experiment.

    Attributes:
        train: The training images of the in-distribution class only.
        test: The whole test split (all classes).
        is_ood: Boolean, one per test image: True where its class is not ``id_class``.
        id_class: The in-distribution class index.
        dataset: The data set's name.
    """

    train: ImageSet
    test: ImageSet
    is_ood: np.ndarray
    id_class: int
    dataset: str


def check_class(id_class: object, n_classes: int, dataset: str) -> int:
    """``id_class`` as an int, or DataError naming the valid range ``0..n_classes-1``."""
    if isinstance(id_class, bool) or not isinstance(id_class, (int, np.integer)):
        raise DataError(f"{dataset}: class index must be an integer in 0..{n_classes - 1}, got {id_class!r}")
    if not 0 <= int(id_class) < n_classes:
        raise DataError(f"{dataset}: class index {id_class} out of range; valid classes are 0..{n_classes - 1}")
    return int(id_class)


def split_one_class(train_all: ImageSet, test_all: ImageSet, id_class: int, dataset: str = "") -> OneClassSplit:
    """The one-class split of already loaded train and test sets (see :func:`one_class`).

    Raises:
        DataError: invalid class index, or the class has no training images.
    """
    name = dataset or train_all.name
    n_classes = len(train_all.classes) or int(train_all.labels.max(initial=-1)) + 1
    c = check_class(id_class, n_classes, name)
    members = train_all.labels == c
    if not members.any():
        raise DataError(f"{name}: class {c} has no training images")
    is_ood = test_all.labels != c
    return OneClassSplit(train_all.subset(members), test_all, is_ood, c, name)


def one_class(dataset: str, id_class: int, root: str | os.PathLike[str] | None = None, download: bool = True) -> OneClassSplit:
    """Load ``dataset`` and split it for one-class OOD detection with ``id_class`` in-distribution.

    ``train`` holds that class's training images; ``test`` is the whole test split and
    ``is_ood`` marks every test image of another class.

    Raises:
        DataError: unknown data set, missing files, or a class index outside ``0..n_classes-1``.
    """
    train_all = load(dataset, "train", root=root, download=download)
    n_classes = len(train_all.classes) or int(train_all.labels.max(initial=-1)) + 1
    check_class(id_class, n_classes, dataset)
    test_all = load(dataset, "test", root=root, download=download)
    return split_one_class(train_all, test_all, id_class, dataset)
