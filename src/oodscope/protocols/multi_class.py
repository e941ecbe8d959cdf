"""The multi-class protocol: every in-distribution class together, as a classifier sees them.

In-distribution = the chosen classes of a labelled data set; a fixed 10 % of their training
images (the same for every seed) is held out as a validation split; the rest trains. The test
set is the in-distribution test images (ID) plus an OOD test set: another data set's test split
(far OOD) or held-out classes of the same data set (near OOD). Known outliers, for detectors
that use them, are drawn from an auxiliary data set that shares no class with the test set.

Named benchmarks (``--protocol NAME``):

* ``mnist-vs-letters``: the 10 MNIST digits vs the EMNIST-letters test split (20,800 letters).
* ``split-mnist``: MNIST digits 0-5 vs digits 6-9 (near OOD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from oodscope.data import ImageSet, convert
from oodscope.errors import InputError
from oodscope.protocols.base import DataStore, Protocol, Task
from oodscope.protocols.cells import Cell, MethodInfo, variants_for
from oodscope.protocols.one_class import Budget, check_budget
from oodscope.protocols.outliers import sample_outliers

VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0  # the validation split does not change with the cell's seed


@dataclass(frozen=True)
class Benchmark:
    """A named multi-class benchmark.

    Attributes:
        name: Its name (``--protocol``).
        dataset: The in-distribution data set.
        id_classes: In-distribution classes; None = all.
        ood_dataset: Data set of the OOD test images (its test split).
        ood_classes: Classes of ``ood_dataset`` that are OOD; None = all.
        description: One line for humans.
        default_oe: The auxiliary data set of known outliers, disjoint from the test images
            (None: there is none among oodscope's data sets; ``--oe`` must name one).
    """

    name: str
    dataset: str
    id_classes: tuple[int, ...] | None
    ood_dataset: str
    ood_classes: tuple[int, ...] | None
    description: str
    default_oe: str | None = None


BENCHMARKS: dict[str, Benchmark] = {
    "mnist-vs-letters": Benchmark("mnist-vs-letters", "mnist", None, "emnist-letters", None,
                                  "ID: the 10 MNIST digits; OOD: the EMNIST-letters test split"),
    "split-mnist": Benchmark("split-mnist", "mnist", (0, 1, 2, 3, 4, 5), "mnist", (6, 7, 8, 9),
                             "ID: MNIST digits 0-5; OOD: digits 6-9 (near OOD)", "emnist-letters"),
}


def _relabel(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Original labels -> index in ``classes`` (sorted; -1 where not in it)."""
    pos = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
    return np.where(classes[pos] == labels, pos, -1).astype(np.int64)


@dataclass(frozen=True)
class MultiClass(Protocol):
    """A named :class:`Benchmark`, with known outliers from ``oe_dataset`` for detectors that use them.

    Cells: per seed, one cell (``n_oe`` 0, no outlier data set) per method without outlier
    exposure, and one per budget of ``n_oe`` per method with it. ``oe_dataset`` None means the
    benchmark's default.
    """

    name: ClassVar[str] = "multi-class"
    benchmark: str = "mnist-vs-letters"
    oe_dataset: str | None = None
    n_oe: tuple[Budget, ...] = (16,)

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise InputError(f"unknown multi-class benchmark {self.benchmark!r}; known: {', '.join(BENCHMARKS)}")
        for n in self.n_oe:
            check_budget(n, "number of outliers")

    def outlier_source(self) -> str:
        """The auxiliary data set of known outliers.

        Raises:
            InputError: none given and the benchmark has no default, or it shares the test images' data sets.
        """
        b = self.spec
        oe = self.oe_dataset or b.default_oe
        if oe is None:
            raise InputError(f"{self.benchmark}: no outlier data set disjoint from its test images is known; "
                             "name one with --oe")
        if oe in (b.dataset, b.ood_dataset):
            raise InputError(f"{self.benchmark}: outliers from {oe!r} would share images' classes with the "
                             "in-distribution or OOD test set; choose another --oe data set")
        return oe

    @property
    def spec(self) -> Benchmark:
        """The named benchmark."""
        return BENCHMARKS[self.benchmark]

    @property
    def dataset(self) -> str:  # type: ignore[override]
        return self.spec.dataset

    def cell(self, method: str, seed: int, preset: str, n_oe: Budget, variant: tuple[tuple[str, Any], ...] = ()) -> Cell:
        """One cell of this protocol."""
        oe = None if n_oe == 0 else self.outlier_source()
        fields = (("benchmark", self.benchmark), ("n_oe", n_oe), ("oe_dataset", oe))
        return Cell(self.name, self.dataset, method, seed, preset, fields, variant)

    def cells(self, methods: list[MethodInfo], seeds: list[int], preset: str, store: DataStore,
              variants: list[dict[str, Any]] | None = None) -> list[Cell]:
        out = []
        for s in seeds:
            out += [self.cell(m.name, s, preset, 0, v) for m in methods if not m.uses_outliers
                    for v in variants_for(m, variants)]
            out += [self.cell(m.name, s, preset, n, v) for n in self.n_oe for m in methods if m.uses_outliers
                    for v in variants_for(m, variants)]
        return out

    def group(self, cell: Cell) -> tuple[Any, ...]:
        return (cell["benchmark"], cell.seed, cell.preset, cell["n_oe"], cell["oe_dataset"])

    def check(self, cells: list[Cell], store: DataStore) -> None:
        for cell in cells:
            if (cell.protocol, cell.get("benchmark")) != (self.name, self.benchmark):
                raise InputError(f"cell of {cell.protocol} {cell.get('benchmark', cell.dataset)} in a run of {self.benchmark}")
            check_budget(cell["n_oe"], "number of outliers", zero=True)

    def id_classes(self, store: DataStore) -> np.ndarray:
        """The in-distribution classes (original labels), sorted."""
        b = self.spec
        return np.array(sorted(b.id_classes) if b.id_classes is not None else range(store.n_classes(b.dataset)))

    def task(self, cell: Cell, store: DataStore) -> Task:
        b = self.spec
        classes = self.id_classes(store)
        train_all, test_all = store.get(b.dataset, "train"), store.get(b.dataset, "test")
        names = [train_all.classes[c] if c < len(train_all.classes) else str(c) for c in classes]
        members = np.flatnonzero(np.isin(train_all.labels, classes))
        order = np.random.default_rng(VALIDATION_SEED).permutation(members)
        n_val = int(round(VALIDATION_FRACTION * len(members)))
        val_idx, fit_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

        def part(source: ImageSet, idx: np.ndarray) -> ImageSet:
            return ImageSet(source.images[idx], _relabel(source.labels[idx], classes), names, b.name)

        train, validation = part(train_all, fit_idx), part(train_all, val_idx)
        id_test = np.flatnonzero(np.isin(test_all.labels, classes))
        ood_all = store.get(b.ood_dataset, "test")
        ood_idx = np.arange(len(ood_all)) if b.ood_classes is None else np.flatnonzero(np.isin(ood_all.labels, b.ood_classes))
        ood_images = convert(ood_all.images[ood_idx], tuple(train.images.shape[2:]), int(train.images.shape[1]))
        images = np.concatenate([test_all.images[id_test], ood_images])
        original = np.concatenate([test_all.labels[id_test], ood_all.labels[ood_idx]])
        is_ood = np.concatenate([np.zeros(len(id_test), bool), np.ones(len(ood_idx), bool)])
        test_class = np.where(is_ood, -1, _relabel(original, classes))
        test = ImageSet(images, test_class, names, f"{b.name} test")
        outliers = None
        if cell["n_oe"] != 0:
            n = None if cell["n_oe"] == "all" else int(cell["n_oe"])
            outliers = sample_outliers(store.get(cell["oe_dataset"], "train"), n, cell.seed, like=train)
        return Task(train, test, is_ood, outliers, validation, test_class, original)

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.name, "benchmark": self.benchmark, "dataset": self.dataset,
                "oe_dataset": self.oe_dataset or self.spec.default_oe, "n_oe": list(self.n_oe), "description": self.spec.description}
