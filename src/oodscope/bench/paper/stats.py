"""Numbers behind the suite tables and figures: per-class AUROC and per-seed class averages.

Results rows (normalised, :mod:`oodscope.results`) are matched to a suite's cells by key;
rows of other grids in the same directory are ignored. This module loads no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from oodscope.bench.paper.suites import Budget, SuiteSpec, suite_cells
from oodscope.protocols import Cell
from oodscope.results import field, first_per_cell, metric

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


def with_unsupervised(spec: SuiteSpec, rows: list[dict[str, Any]]) -> SuiteSpec:
    """``spec``, with its methods without outliers read off the rows (those with an ``n_oe`` 0 cell)
    when the suite record predates keeping them."""
    if spec.unsupervised is not None:
        return spec
    found = {r["method"] for r in rows if field(r, "n_oe") == 0}
    return replace(spec, unsupervised=[m for m in spec.methods if m in found])


def cell_rows(spec: SuiteSpec, rows: list[dict[str, Any]]) -> list[tuple[Cell, dict[str, Any] | None]]:
    """Each cell of the suite with its finished row (the first in the log) or None."""
    by_key = first_per_cell(rows)
    return [(c, by_key.get(c.key())) for c in suite_cells(with_unsupervised(spec, rows))]


def cell_seconds(row: dict[str, Any]) -> float:
    """Training plus scoring seconds that one finished cell added, its upstream network's
    training left out (:func:`compute_seconds` counts each upstream once)."""
    fit = float(row.get("fit_seconds", 0.0))
    up = row.get("upstream")
    if isinstance(up, dict):
        fit -= float(up.get("fit_seconds", 0.0))
    return max(fit, 0.0) + float(row.get("score_seconds", 0.0))


def compute_seconds(pairs: list[tuple[Cell, dict[str, Any] | None]]) -> dict[str, float]:
    """Seconds spent per method over the suite's finished cells: each cell's own work (see
    :func:`cell_seconds`), plus each upstream network's training once, counted for the first
    method that used it."""
    out: dict[str, float] = {}
    seen: set[str] = set()
    for cell, row in pairs:
        if row is None:
            continue
        out[cell.method] = out.get(cell.method, 0.0) + cell_seconds(row)
        up = row.get("upstream")
        if isinstance(up, dict) and str(up.get("key")) not in seen:
            seen.add(str(up.get("key")))
            out[cell.method] += float(up.get("fit_seconds", 0.0))
    return out


def per_class(pairs: list[tuple[Cell, dict[str, Any] | None]], select: Select) -> dict[int, float]:
    """AUROC per class of the selected cells, averaged over finished seeds (missing classes absent)."""
    values: dict[int, list[float]] = {}
    for cell, row in pairs:
        v = None if row is None else metric(row, "auroc")
        if v is not None and select(cell):
            values.setdefault(cell["id_class"], []).append(v)
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


def sweep(spec: SuiteSpec, rows: list[dict[str, Any]]) -> tuple[dict[str, dict[Budget, SeedStat | None]], dict[str, SeedStat | None]]:
    """For a sweep suite (``fig4``/``fig5``): ``{method: {x: stat}}`` for each method with outliers
    and each value x of the swept budget, and ``{method: stat}`` for each method without (one
    value for every x)."""
    axis = spec.definition.axis
    if axis is None:
        raise ValueError(f"suite {spec.suite} sweeps nothing")
    spec = with_unsupervised(spec, rows)
    pairs = cell_rows(spec, rows)
    xs = spec.n_oe if axis == "n_oe" else spec.oe_classes
    out: dict[str, dict[Budget, SeedStat | None]] = {}
    flat: dict[str, SeedStat | None] = {}
    for m in spec.methods:
        if m in (spec.unsupervised or []):
            flat[m] = seed_stat(spec, pairs, lambda c, m=m: c.method == m)
        else:
            out[m] = {x: seed_stat(spec, pairs, lambda c, m=m, x=x: c.method == m and c[axis] == x) for x in xs}
    return out, flat
