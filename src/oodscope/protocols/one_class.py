"""The one-class protocol: one class is in-distribution, every other class is out-of-distribution.

Training uses only that class's training images (plus, for outlier exposure, a few known outliers
drawn from an auxiliary data set's training split); the whole test split is evaluated.
:class:`OneClass` is the protocol object the benchmark runs; :func:`one_class` and
:func:`split_one_class` give the split of one class directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from oodscope.data import ImageSet, load
from oodscope.errors import DataError, InputError
from oodscope.protocols.base import DataStore, Protocol, Task
from oodscope.protocols.cells import Cell, MethodInfo, variants_for
from oodscope.protocols.outliers import sample_outliers

OE_ALL = "all"
OE_NEXT = "next"  # oe_classes: the class after the in-distribution one, (c + 1) mod K, of the same data set
Budget = int | float | str


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


def check_budget(value: Any, what: str, zero: bool = False, fraction: bool = False,
                 names: tuple[str, ...] = (OE_ALL,)) -> None:
    """InputError unless ``value`` is a positive integer (or 0 with ``zero``), one of ``names``, or
    with ``fraction`` a float in (0, 1)."""
    ok = (value in names or (isinstance(value, int) and not isinstance(value, bool) and value >= (0 if zero else 1))
          or (fraction and isinstance(value, float) and 0 < value < 1))
    if not ok:
        kinds = ("a non-negative" if zero else "a positive") + " integer" + (", a fraction in (0, 1)" if fraction else "")
        raise InputError(f"{what} must be {kinds} or {' or '.join(map(repr, names))}, got {value!r}")


def outlier_count(n_oe: Budget, n_train: int) -> int | None:
    """The number of known outliers of a budget: an int as it is, None for all, and for a fraction
    gamma_l in (0, 1) the m with m / (n_train + m) = gamma_l (Deep SAD's ratio of labelled anomalies)."""
    if n_oe == OE_ALL:
        return None
    if isinstance(n_oe, float):
        return max(1, round(n_oe * n_train / (1 - n_oe)))
    return int(n_oe)


def outlier_sample(aux: ImageSet | None, cell: Cell, like: ImageSet) -> ImageSet | None:
    """The known outliers of a one-class cell: ``n_oe`` images (or a ratio of the training set)
    from ``oe_classes`` classes of ``aux`` (the in-distribution class excluded when ``aux`` is the
    in-distribution data set; ``"next"``: only its class (c + 1) mod K); None when ``n_oe`` is 0."""
    if aux is None or cell["n_oe"] == 0:
        return None
    exclude: tuple[int, ...] = (cell["id_class"],) if cell["oe_dataset"] == cell.dataset else ()
    k = None if cell["oe_classes"] in (OE_ALL, OE_NEXT) else int(cell["oe_classes"])
    if cell["oe_classes"] == OE_NEXT:
        n_classes = len(aux.classes) or int(aux.labels.max(initial=-1)) + 1
        exclude = tuple(c for c in range(n_classes) if c != (cell["id_class"] + 1) % n_classes)
    n = outlier_count(cell["n_oe"], len(like))
    return sample_outliers(aux, n, cell.seed, k_classes=k, like=like, exclude_classes=exclude)


@dataclass(frozen=True)
class OneClass(Protocol):
    """One class of ``dataset`` in-distribution at a time, known outliers from ``oe_dataset``.

    A grid has one cell per class, seed, outlier budget ``n_oe``, number of outlier classes
    ``oe_classes``, method and variant (methods without outlier exposure ignore the outliers).

    Attributes:
        dataset: In-distribution data set.
        classes: In-distribution classes; None = every class.
        oe_dataset: Auxiliary data set (its train split) the known outliers come from.
        n_oe: Outlier budgets (positive ints, ``"all"`` for the whole auxiliary set, or a fraction
            gamma_l in (0, 1): that ratio of labelled anomalies in the training set).
        oe_classes: Numbers of auxiliary classes the outliers are drawn from (or ``"all"``; or
            ``"next"``: the class (c + 1) mod K of the in-distribution data set itself, the known
            anomaly class of Deep SAD's experiments).
    """

    name: ClassVar[str] = "one-class"
    dataset: str = "mnist"
    classes: tuple[int, ...] | None = None
    oe_dataset: str = "emnist-letters"
    n_oe: tuple[Budget, ...] = (16,)
    oe_classes: tuple[Budget, ...] = (OE_ALL,)

    def __post_init__(self) -> None:
        for n in self.n_oe:
            check_budget(n, "number of outliers", fraction=True)
        for k in self.oe_classes:
            check_budget(k, "number of outlier classes", names=(OE_ALL, OE_NEXT))
        if OE_NEXT in self.oe_classes and self.oe_dataset != self.dataset:
            raise InputError(f"outlier classes {OE_NEXT!r} take the known anomalies from the next class of "
                             f"{self.dataset} itself; set the outlier data set to {self.dataset} (--oe {self.dataset})")

    def cell(self, method: str, id_class: int, seed: int, preset: str, n_oe: Budget, oe_classes: Budget,
             variant: tuple[tuple[str, Any], ...] = ()) -> Cell:
        """One cell of this protocol."""
        fields = (("id_class", id_class), ("n_oe", n_oe), ("oe_classes", oe_classes), ("oe_dataset", self.oe_dataset))
        return Cell(self.name, self.dataset, method, seed, preset, fields, variant)

    def cells(self, methods: list[MethodInfo], seeds: list[int], preset: str, store: DataStore,
              variants: list[dict[str, Any]] | None = None) -> list[Cell]:
        """Class-major, then seed, budgets and methods, so cells of one group are adjacent and
        groups sharing (class, seed) follow each other."""
        labelled = [m.name for m in methods if m.needs_labels]
        if labelled:
            raise InputError(f"{', '.join(labelled)}: need the labels of several in-distribution classes, which the "
                             "one-class protocol does not have; use a multi-class protocol (--protocol "
                             "mnist-vs-letters or split-mnist)")
        classes = list(self.classes) if self.classes is not None else list(range(store.n_classes(self.dataset)))
        return [self.cell(m.name, c, s, preset, n, k, v)
                for c in classes for s in seeds for n in self.n_oe for k in self.oe_classes
                for m in methods for v in variants_for(m, variants)]

    def group(self, cell: Cell) -> tuple[Any, ...]:
        return (cell.dataset, cell["id_class"], cell.seed, cell.preset, cell["oe_dataset"], cell["n_oe"], cell["oe_classes"])

    def check(self, cells: list[Cell], store: DataStore) -> None:
        """InputError for a cell of another protocol or data set, a class out of range or an invalid
        budget (``n_oe`` 0 is allowed: no outliers, for methods that use none)."""
        n_classes = store.n_classes(self.dataset)
        bad = sorted({c["id_class"] for c in cells if not 0 <= c["id_class"] < n_classes})
        if bad:
            raise InputError(f"{self.dataset}: classes {bad} out of range; valid classes are 0..{n_classes - 1}")
        for cell in cells:
            if (cell.protocol, cell.dataset) != (self.name, self.dataset):
                raise InputError(f"cell of {cell.protocol} on {cell.dataset!r} in a {self.name} run on {self.dataset!r}")
            check_budget(cell["n_oe"], "number of outliers", zero=True, fraction=True)

    def task(self, cell: Cell, store: DataStore) -> Task:
        split = split_one_class(store.get(self.dataset, "train"), store.get(self.dataset, "test"), cell["id_class"],
                                self.dataset)
        if cell["n_oe"] == 0:
            return Task(split.train, split.test, split.is_ood)
        # the outliers' data set is read only when a detector asks for them
        return Task(split.train, split.test, split.is_ood, load_outliers=lambda: outlier_sample(
            store.get(cell["oe_dataset"], "train"), cell, split.train))

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.name, "dataset": self.dataset,
                "classes": None if self.classes is None else list(self.classes), "oe_dataset": self.oe_dataset,
                "n_oe": list(self.n_oe), "oe_classes": list(self.oe_classes)}
