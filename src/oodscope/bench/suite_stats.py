"""Numbers behind the suite tables and figures: per-class AUROC and per-seed class averages.

Results rows are matched to a suite's cells by key (:func:`oodscope.bench.cells.row_key`);
rows of other grids in the same directory are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from oodscope.bench.cells import Cell, row_key
from oodscope.bench.suites import Budget, SuiteSpec, suite_cells

Select = Callable[[Cell], bool]


@dataclass(frozen=True)
class SeedStat:
    """Mean and standard deviation (numpy's, ddof=0) over seeds of the class-averaged AUROC.

    Only seeds with every class of the suite finished count (``n_seeds`` of ``total_seeds``).
    """

    mean: float
    std: float
    n_seeds: int
    total_seeds: int


@dataclass(frozen=True)
class ClassMean:
    """The mean over classes of per-class AUROC (each averaged over its finished seeds)."""

    mean: float
    n_classes: int
    total_classes: int


def cell_rows(spec: SuiteSpec, rows: list[dict[str, Any]]) -> list[tuple[Cell, dict[str, Any] | None]]:
    """Each cell of the suite with its finished row (the first in the log) or None."""
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        by_key.setdefault(row_key(r), r)
    return [(c, by_key.get(c.key())) for c in suite_cells(spec)]


def cell_seconds(row: dict[str, Any]) -> float:
    """Training plus scoring seconds that one finished cell cost. A GEOM f the cell reused
    (``shared_base``) is left out: the ``geom`` cell that trained it counts it."""
    if row.get("shared_base") and row.get("method") == "geom":
        return 0.0  # its f and its test scores were both computed by an earlier cell
    fit = float(row.get("fit_seconds", 0.0))
    if row.get("shared_base"):
        fit -= float(row.get("base_fit_seconds", 0.0))
    return max(fit, 0.0) + float(row.get("score_seconds", 0.0))


def compute_seconds(pairs: list[tuple[Cell, dict[str, Any] | None]]) -> dict[str, float]:
    """Seconds spent per method over the suite's finished cells (see :func:`cell_seconds`)."""
    out: dict[str, float] = {}
    for cell, row in pairs:
        if row is not None:
            out[cell.method] = out.get(cell.method, 0.0) + cell_seconds(row)
    return out


def per_class(pairs: list[tuple[Cell, dict[str, Any] | None]], select: Select) -> dict[int, float]:
    """AUROC per class of the selected cells, averaged over finished seeds (missing classes absent)."""
    values: dict[int, list[float]] = {}
    for cell, row in pairs:
        if row is not None and select(cell):
            values.setdefault(cell.id_class, []).append(float(row["auroc"]))
    return {c: float(np.mean(v)) for c, v in values.items()}


def class_mean(values: dict[int, float], classes: list[int]) -> ClassMean | None:
    """Mean of ``values`` over the suite's classes that have one; None if none has."""
    have = [values[c] for c in classes if c in values]
    return ClassMean(float(np.mean(have)), len(have), len(classes)) if have else None


def seed_mean(spec: SuiteSpec, pairs: list[tuple[Cell, dict[str, Any] | None]], select: Select,
              seed: int) -> ClassMean | None:
    """The class-averaged AUROC of the selected cells of one seed, over its finished classes."""
    return class_mean(per_class(pairs, lambda c: c.seed == seed and select(c)), spec.classes)


def seed_stat(spec: SuiteSpec, pairs: list[tuple[Cell, dict[str, Any] | None]], select: Select) -> SeedStat | None:
    """Mean ± std over complete seeds of the class-averaged AUROC of the selected cells."""
    means = [seed_mean(spec, pairs, select, s) for s in spec.seeds]
    per_seed = [m.mean for m in means if m is not None and m.n_classes == m.total_classes]
    if not per_seed:
        return None
    return SeedStat(float(np.mean(per_seed)), float(np.std(per_seed)), len(per_seed), len(spec.seeds))


def sweep(spec: SuiteSpec, rows: list[dict[str, Any]]) -> tuple[dict[str, dict[Budget, SeedStat | None]], SeedStat | None]:
    """For a sweep suite (``fig4``/``fig5``): ``{method: {x: stat}}`` for each semi-supervised
    method and each value x of the swept budget, and ``geom``'s stat (None when not run)."""
    axis = spec.definition.axis
    if axis is None:
        raise ValueError(f"suite {spec.suite} sweeps nothing")
    pairs = cell_rows(spec, rows)
    xs = spec.n_oe if axis == "n_oe" else spec.oe_classes
    out: dict[str, dict[Budget, SeedStat | None]] = {}
    for m in spec.methods:
        if m == "geom":
            continue
        out[m] = {x: seed_stat(spec, pairs, lambda c, m=m, x=x: c.method == m and getattr(c, axis) == x) for x in xs}
    geom = seed_stat(spec, pairs, lambda c: c.method == "geom") if "geom" in spec.methods else None
    return out, geom
