"""Which results rows a figure shows, and where the run's data lives.

In a suite directory only the suite's cells count; elsewhere every row of ``results.jsonl``.
Curve figures have one file per data set (one-class) or benchmark (multi-class) and one panel
per in-distribution class (one panel when the protocol has none). Where a method has several
cells per panel (seeds, budgets), they show one: the lowest seed, then the largest outlier
budget and the most outlier classes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oodscope.bench.paper.files import read_suite
from oodscope.bench.paper.stats import cell_rows
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.protocols import OE_ALL
from oodscope.errors import DataError
from oodscope.results import CLASS_FIELD, field, read_results, read_section, row_label

Panel = tuple[str, Any, str]  # (figure name, class or None, method label)


def drawn_rows(rows: list[dict[str, Any]], spec: SuiteSpec | None) -> list[dict[str, Any]]:
    """Of normalised ``rows``, those to draw: the suite's finished cells, or every row without a suite."""
    if spec is None:
        return rows
    return [r for _, r in cell_rows(spec, rows) if r is not None]


def finished_rows(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows to draw of a directory (see :func:`drawn_rows`)."""
    rows = read_results(Path(directory) / "results.jsonl")[0]
    info = read_suite(directory)
    return drawn_rows(rows, None if info is None else SuiteSpec.from_json(info["spec"]))


def _rank(value: Any) -> float:
    if value in (None, 0):
        return 0.0
    if isinstance(value, str):
        return float("inf") if value == OE_ALL else 1.0  # "next": one class
    return float(value)


def figure_name(row: dict[str, Any]) -> str:
    """The figure a row is drawn in: its multi-class benchmark, else its data set."""
    return str(field(row, "benchmark") or row["dataset"])


def representatives(rows: list[dict[str, Any]]) -> dict[Panel, dict[str, Any]]:
    """One row with a scores file per (figure, class, method label): lowest seed, then the
    largest ``n_oe``, then the most outlier classes."""
    best: dict[Panel, tuple[tuple[float, ...], dict[str, Any]]] = {}
    for r in rows:
        if not r.get("scores_file"):
            continue
        key = (figure_name(r), field(r, CLASS_FIELD), row_label(r))
        rank = (float(r["seed"]), -_rank(field(r, "n_oe")), -_rank(field(r, "oe_classes")))
        if key not in best or rank < best[key][0]:
            best[key] = (rank, r)
    return {key: r for key, (_, r) in best.items()}


def data_root(directory: str | os.PathLike[str]) -> str | None:
    """The data root the run used: the suite record's, else the grid record's (``paper_suite`` and
    ``grid`` of ``experiment.json``, or ``suite.json`` / ``run.json``; None = the default)."""
    info = read_suite(directory)
    if info is not None and info.get("data_root"):
        return str(info["data_root"])
    try:
        config = (read_section(directory, "grid") or {}).get("config", {})
        root = config.get("data_root") or (config.get("run") or {}).get("data_root")
    except (DataError, AttributeError):
        return None
    return str(root) if root else None
