"""What every evaluation protocol provides: its cells, the data of a cell (:class:`Task`) and a
description of itself; and :class:`DataStore`, the data sets a run has loaded."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from oodscope.data import ImageSet, load
from oodscope.protocols.cells import Cell, MethodInfo


@dataclass
class Task:
    """The data one cell is fitted and evaluated on.

    Attributes:
        train: In-distribution training images; for a multi-class protocol their labels are class
            indices 0..K-1.
        test: Test images, in-distribution and out-of-distribution.
        is_ood: One boolean per test image.
        outliers: Known outliers (outlier exposure), or None; read them with
            :meth:`known_outliers`, which loads deferred ones.
        validation: Held-out in-distribution images (labels as ``train``'s), or None.
        test_class: Per test image its in-distribution class index, -1 for OOD images; set when
            a classifier's accuracy can be measured (multi-class protocols).
        test_labels: Labels saved with the test scores (default: ``test.labels``).
        load_outliers: Loads the known outliers on first use, when the protocol deferred them (a
            run whose detectors use none never reads their data set).
    """

    train: ImageSet
    test: ImageSet
    is_ood: np.ndarray
    outliers: ImageSet | None = None
    validation: ImageSet | None = None
    test_class: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    load_outliers: Callable[[], ImageSet | None] | None = field(default=None, repr=False, compare=False)

    def known_outliers(self) -> ImageSet | None:
        """The known outliers, loaded now if the protocol deferred them."""
        if self.outliers is None and self.load_outliers is not None:
            self.outliers, self.load_outliers = self.load_outliers(), None
        return self.outliers

    @property
    def saved_labels(self) -> np.ndarray:
        """The labels stored beside the scores."""
        return self.test.labels if self.test_labels is None else self.test_labels


class DataStore:
    """Data set splits loaded once per run (``load(name, split)`` with the run's root)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, download: bool = True) -> None:
        self.root, self.download = root, download
        self._sets: dict[tuple[str, str], ImageSet] = {}

    def get(self, name: str, split: str) -> ImageSet:
        """The split, loaded on first use (DataError if missing or corrupt)."""
        if (name, split) not in self._sets:
            self._sets[(name, split)] = load(name, split, root=self.root, download=self.download)
        return self._sets[(name, split)]

    def n_classes(self, name: str) -> int:
        """Number of classes of a data set (from its training split)."""
        train = self.get(name, "train")
        return len(train.classes) or int(train.labels.max(initial=-1)) + 1


class Protocol(ABC):
    """An evaluation protocol: which images are in-distribution, which are OOD, which outliers
    are known. Instances are frozen dataclasses holding the protocol's parameters; every one has
    a ``dataset`` attribute, the in-distribution data set."""

    name: ClassVar[str] = ""
    dataset: str

    @abstractmethod
    def cells(self, methods: list[MethodInfo], seeds: list[int], preset: str, store: DataStore,
              variants: list[dict[str, Any]] | None = None) -> list[Cell]:
        """Every cell of a grid, ordered so cells of one :meth:`group` are adjacent.

        Raises:
            InputError: a method this protocol cannot evaluate.
        """

    @abstractmethod
    def group(self, cell: Cell) -> tuple[Any, ...]:
        """Cells with the same value share their :class:`Task`."""

    @abstractmethod
    def check(self, cells: list[Cell], store: DataStore) -> None:
        """InputError for cells this protocol cannot run (another data set, classes out of range, ...)."""

    @abstractmethod
    def task(self, cell: Cell, store: DataStore) -> Task:
        """The data of ``cell`` (and of every cell of its group)."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The protocol's name and parameters, for the grid's record (``experiment.json``)."""
