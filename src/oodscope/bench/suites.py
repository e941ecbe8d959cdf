"""Benchmark suites reproducing the paper's experiments: Tables 2 and 3, Figs. 4 and 5.

A suite is a fixed list of :class:`~oodscope.bench.cells.Cell` objects (run by
:func:`oodscope.bench.runner.run_bench` like any grid, so results and resume are the same)
plus a table builder (:mod:`oodscope.bench.suite_tables`).

* ``table2``: ``layers`` with taps softmax / z4 / z3 / z2 / z1 / z1..z4, plus oodscope's
  default taps (z3+z4+ptrue) and ``geom``; the whole outlier set; seed 0.
* ``table3``: ``geom``, ``geom+``, ``bce``, ``layers`` per class; the whole outlier set; seed 0.
* ``fig4``: outlier budgets 16, 64, 256, 1024 x seeds 0-2 for ``geom+``, ``bce``, ``layers``.
* ``fig5``: 500 outliers drawn from 1, 2, 5, 10 or all outlier classes x seeds 0-2.

``geom`` uses no outliers, so each suite has one ``geom`` cell per (class, seed), with
``n_oe = 0``, never one per budget. Cells run seed by seed, class by class, so ``geom``'s
trained f is shared with every ``layers`` cell of its (class, seed) and a seed's results
are complete before the next seed starts.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from oodscope.bench.cells import OE_ALL, Cell
from oodscope.bench.paper_values import DEFAULT_TAPS, TABLE2_ROWS
from oodscope.errors import InputError

Budget = int | str

# the paper's outlier sets; 80 Million Tiny Images has been withdrawn, so CIFAR-100 replaces it
DEFAULT_OE: dict[str, str] = {"mnist": "emnist-letters", "cifar10": "cifar100"}
KNOWN_CLASS_COUNTS: dict[str, int] = {"mnist": 10, "cifar10": 10, "digits": 10, "cifar100": 100}
SEMI = ["geom+", "bce", "layers"]


@dataclass(frozen=True)
class SuiteDef:
    """What a suite runs by default.

    Attributes:
        name: Suite name (``--suite``).
        title: One-line description for tables.
        methods: Methods in table order (``geom`` gets one cell per class and seed).
        n_oe: Default outlier budgets.
        oe_classes: Default numbers of outlier classes.
        seeds: Default seeds.
        axis: The swept budget (``"n_oe"`` or ``"oe_classes"``), or None for a table suite;
            the other budget must hold a single value.
        taps: Taps variants of ``layers`` (one cell each), or None for the preset's.
    """

    name: str
    title: str
    methods: list[str]
    n_oe: list[Budget]
    oe_classes: list[Budget]
    seeds: list[int]
    axis: str | None = None
    taps: list[tuple[str, ...]] | None = None


SUITES: dict[str, SuiteDef] = {
    "table2": SuiteDef(
        "table2", "Table 2: AUROC of layers with different features (taps)", ["geom", "layers"],
        [OE_ALL], [OE_ALL], [0],
        taps=[t for _, t in TABLE2_ROWS if t is not None] + [DEFAULT_TAPS],
    ),
    "table3": SuiteDef("table3", "Table 3: per-class AUROC of the detectors", ["geom", *SEMI], [OE_ALL], [OE_ALL], [0]),
    "fig4": SuiteDef("fig4", "Fig. 4: AUROC vs number of known outliers", ["geom", *SEMI],
                     [16, 64, 256, 1024], [OE_ALL], [0, 1, 2], axis="n_oe"),
    "fig5": SuiteDef("fig5", "Fig. 5: AUROC vs number of outlier classes (500 outliers)", ["geom", *SEMI],
                     [500], [1, 2, 5, 10, OE_ALL], [0, 1, 2], axis="oe_classes"),
}


@dataclass
class SuiteSpec:
    """A suite resolved for one run: everything needed to list its cells again later.

    Attributes mirror :class:`SuiteDef`, with the user's overrides applied.
    """

    suite: str
    dataset: str
    preset: str
    oe_dataset: str
    classes: list[int]
    seeds: list[int]
    n_oe: list[Budget]
    oe_classes: list[Budget]
    methods: list[str] = field(default_factory=list)

    @property
    def definition(self) -> SuiteDef:
        """The suite's :class:`SuiteDef`."""
        return SUITES[self.suite]

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-able values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SuiteSpec:
        """Inverse of :meth:`to_json`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def n_classes_of(dataset: str, data_root: str | os.PathLike[str] | None = None, download: bool = True) -> int:
    """Number of classes of ``dataset`` (known ones without loading it)."""
    if dataset in KNOWN_CLASS_COUNTS:
        return KNOWN_CLASS_COUNTS[dataset]
    from oodscope.data import load

    train = load(dataset, "train", root=data_root, download=download)
    return len(train.classes) or int(train.labels.max()) + 1


def make_spec(
    suite: str,
    dataset: str,
    preset: str,
    n_classes: int,
    oe_dataset: str | None = None,
    classes: list[int] | None = None,
    seeds: list[int] | None = None,
    n_oe: list[Budget] | None = None,
    oe_classes: list[Budget] | None = None,
    methods: list[str] | None = None,
) -> SuiteSpec:
    """Resolve suite ``suite`` for ``dataset``; every argument given overrides the suite's default
    (``methods`` must be a subset of the suite's methods).

    Raises:
        InputError: unknown suite, no default outlier set for ``dataset``, a method outside the
            suite, several values for a budget the suite does not sweep, invalid budgets.
    """
    if suite not in SUITES:
        raise InputError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    d = SUITES[suite]
    oe = oe_dataset or DEFAULT_OE.get(dataset)
    if oe is None:
        raise InputError(f"suite {suite}: no default outlier set for {dataset!r}; give one with --oe")
    chosen = list(d.methods) if methods is None else [m for m in d.methods if m in methods]
    stray = [m for m in (methods or []) if m not in d.methods]
    if stray or not chosen:
        raise InputError(f"suite {suite}: methods {stray or methods} not in the suite; its methods: {', '.join(d.methods)}")
    spec = SuiteSpec(
        suite=suite, dataset=dataset, preset=preset, oe_dataset=oe,
        classes=list(range(n_classes)) if classes is None else list(classes),
        seeds=list(d.seeds if seeds is None else seeds),
        n_oe=list(d.n_oe if n_oe is None else n_oe),
        oe_classes=list(d.oe_classes if oe_classes is None else oe_classes),
        methods=chosen,
    )
    for name, values in (("n_oe", spec.n_oe), ("oe_classes", spec.oe_classes)):
        if d.axis != name and len(values) != 1:
            raise InputError(f"suite {suite}: give a single value for --{name.replace('_', '-')}, got {values}")
        if any(v != OE_ALL and (isinstance(v, bool) or not isinstance(v, int) or v < 1) for v in values):
            raise InputError(f"suite {suite}: --{name.replace('_', '-')} values must be positive integers or 'all'")
    bad = [c for c in spec.classes if not 0 <= c < n_classes]
    if bad:
        raise InputError(f"{dataset}: classes {bad} out of range; valid classes are 0..{n_classes - 1}")
    if not spec.seeds or not spec.classes:
        raise InputError(f"suite {suite}: no seeds or no classes to run")
    return spec


def geom_cell(spec: SuiteSpec, id_class: int, seed: int) -> Cell:
    """The single ``geom`` cell of (class, seed): no outliers (``n_oe = 0``)."""
    return Cell(spec.dataset, "geom", id_class, 0, OE_ALL, spec.oe_dataset, seed, spec.preset)


def suite_cells(spec: SuiteSpec) -> list[Cell]:
    """Every cell of the suite, seed-major, then class; ``geom`` first in each (class, seed)."""
    d = spec.definition
    cells: list[Cell] = []
    for s in spec.seeds:
        for c in spec.classes:
            if "geom" in spec.methods:
                cells.append(geom_cell(spec, c, s))
            for n in spec.n_oe:
                for k in spec.oe_classes:
                    for m in spec.methods:
                        if m == "geom":
                            continue
                        variants: list[tuple[str, ...] | None] = list(d.taps) if d.taps and m == "layers" else [None]
                        for t in variants:
                            cells.append(Cell(spec.dataset, m, c, n, k, spec.oe_dataset, s, spec.preset, t))
    return cells
