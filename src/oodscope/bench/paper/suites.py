"""Benchmark suites reproducing the paper's experiments: Tables 2 and 3, Figs. 4 and 5.

A suite is a fixed list of one-class :class:`~oodscope.protocols.Cell` objects (run by
:func:`oodscope.bench.runner.run_bench` like any grid, so results and resume are the same)
plus a table builder (:mod:`oodscope.bench.paper.tables`). Which methods each compares comes
from :mod:`oodscope.bench.paper.methods`.

* ``table2``: ``layers`` with taps softmax / z4 / z3 / z2 / z1 / z1..z4, plus oodscope's
  default taps (z3+z4+ptrue) and ``geom``; the whole outlier set; seed 0.
* ``table3``: ``geom``, ``geom+``, ``bce``, ``layers`` per class; the whole outlier set; seed 0.
* ``fig4``: outlier budgets 16, 64, 256, 1024 x seeds 0-2 for ``geom+``, ``bce``, ``layers``.
* ``fig5``: 500 outliers drawn from 1, 2, 5, 10 or all outlier classes x seeds 0-2.

A method that uses no outliers (recorded in the spec as ``unsupervised``) gets one cell per
(class, seed), with ``n_oe = 0``, never one per budget. Cells run seed by seed, class by class,
so an upstream network (GEOM's f) is shared by every cell of its (class, seed) and a seed's
results are complete before the next seed starts.

This module loads no torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from oodscope.bench.paper.methods import CALIBRATION_METHODS, COMPARED, DEFAULT_ROW, TABLE2_METHODS, TABLE2_ROWS
from oodscope.errors import InputError
from oodscope.protocols import OE_ALL, Cell, OneClass, freeze

Budget = int | str

# the paper's outlier sets; 80 Million Tiny Images has been withdrawn, so CIFAR-100 replaces it.
# One-class EMNIST letters takes MNIST digits as its outliers (the other side of the MNIST benchmark).
DEFAULT_OE: dict[str, str] = {"mnist": "emnist-letters", "cifar10": "cifar100", "emnist-letters": "mnist"}
KNOWN_CLASS_COUNTS: dict[str, int] = {"mnist": 10, "cifar10": 10, "digits": 10, "cifar100": 100, "emnist-letters": 26}


@dataclass(frozen=True)
class SuiteDef:
    """What a suite runs by default.

    Attributes:
        name: Suite name (``--suite``).
        title: One-line description for tables.
        methods: Methods in table order.
        n_oe: Default outlier budgets.
        oe_classes: Default numbers of outlier classes.
        seeds: Default seeds.
        axis: The swept budget (``"n_oe"`` or ``"oe_classes"``), or None for a table suite;
            the other budget must hold a single value.
        variants: Per method, its variants (one cell each) instead of the preset's settings.
    """

    name: str
    title: str
    methods: list[str]
    n_oe: list[Budget]
    oe_classes: list[Budget]
    seeds: list[int]
    axis: str | None = None
    variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _table2_variants() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for _, method, variant in [*TABLE2_ROWS, DEFAULT_ROW]:
        if variant is not None:
            out.setdefault(method, []).append(variant)
    return out


SUITES: dict[str, SuiteDef] = {
    "table2": SuiteDef("table2", "Table 2: AUROC of layers with different features (taps)", TABLE2_METHODS,
                       [OE_ALL], [OE_ALL], [0], variants=_table2_variants()),
    "table3": SuiteDef("table3", "Table 3: per-class AUROC of the detectors", COMPARED, [OE_ALL], [OE_ALL], [0]),
    "fig4": SuiteDef("fig4", "Fig. 4: AUROC vs number of known outliers", COMPARED,
                     [16, 64, 256, 1024], [OE_ALL], [0, 1, 2], axis="n_oe"),
    "fig5": SuiteDef("fig5", "Fig. 5: AUROC vs number of outlier classes (500 outliers)", COMPARED,
                     [500], [1, 2, 5, 10, OE_ALL], [0, 1, 2], axis="oe_classes"),
}


@dataclass(frozen=True)
class GridSuite:
    """A suite run as a plain grid under a multi-class protocol: the methods of a detector family.

    Attributes:
        name: Suite name (``--suite``).
        title: One-line description.
        family: The detectors run: those declaring this ``family`` (unless ``methods`` names them).
        seeds: Default seeds.
        methods: The detectors run, in order, instead of a family's.
        variants: Setting variants (one cell each, for the methods having those settings).
        keep: Outputs of the detectors saved beside each cell's scores (for figures drawn from them).
    """

    name: str
    title: str
    family: str
    seeds: list[int]
    methods: list[str] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)
    keep: tuple[str, ...] = ()


# ``classifier``: every detector built on a classifier of the in-distribution classes (post hoc
# and trained), on a multi-class benchmark (``--protocol mnist-vs-letters`` or ``split-mnist``).
# ``calibration`` (Takahashi, "Deep learning: reliability of inference", University of Aizu
# lecture notes, n.d.): the classifier's accuracy, ECE and NLL before (``msp``) and after
# (``temperature``) temperature scaling, and MC dropout and a deep ensemble with each of their
# four uncertainty scores (max probability, entropy, variation ratio, mutual information) as
# detectors.
UNCERTAINTY_SCORES = ["max-prob", "entropy", "variation-ratio", "mi"]
GRID_SUITES: dict[str, GridSuite] = {
    "classifier": GridSuite("classifier", "Classifier-based detectors on a multi-class benchmark", "classifier", [0, 1, 2]),
    "calibration": GridSuite("calibration", "Calibration and predictive uncertainty of the classifier", "", [0, 1, 2],
                             CALIBRATION_METHODS,
                             [{"score": s} for s in UNCERTAINTY_SCORES], keep=("logits",)),
}


@dataclass
class SuiteSpec:
    """A suite resolved for one run: everything needed to list its cells again later.

    Attributes mirror :class:`SuiteDef`, with the user's overrides applied; ``unsupervised``
    lists the methods that use no outliers (None in suite records written before it was kept:
    then it is read off the results, see :func:`oodscope.bench.paper.stats.cell_rows`).
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
    unsupervised: list[str] | None = None

    @property
    def definition(self) -> SuiteDef:
        """The suite's :class:`SuiteDef`."""
        return SUITES[self.suite]

    def protocol(self) -> OneClass:
        """The one-class protocol the suite's cells belong to."""
        return OneClass(self.dataset, tuple(self.classes), self.oe_dataset)

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
    unsupervised: list[str] | None = None,
) -> SuiteSpec:
    """Resolve suite ``suite`` for ``dataset``; every argument given overrides the suite's default
    (``methods`` must be a subset of the suite's methods). ``unsupervised``: the methods that use
    no outliers (one cell per class and seed).

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
        unsupervised=[m for m in chosen if m in (unsupervised or [])],
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


def suite_cells(spec: SuiteSpec) -> list[Cell]:
    """Every cell of the suite, seed-major, then class; methods without outliers first in each
    (class, seed)."""
    d, protocol = spec.definition, spec.protocol()
    unsupervised = spec.unsupervised or []
    cells: list[Cell] = []
    for s in spec.seeds:
        for c in spec.classes:
            cells += [protocol.cell(m, c, s, spec.preset, 0, OE_ALL) for m in spec.methods if m in unsupervised]
            for n in spec.n_oe:
                for k in spec.oe_classes:
                    for m in spec.methods:
                        if m in unsupervised:
                            continue
                        for v in d.variants.get(m) or [None]:
                            variant = () if v is None else tuple(sorted((key, freeze(x)) for key, x in v.items()))
                            cells.append(protocol.cell(m, c, s, spec.preset, n, k, variant))
    return cells
