"""Which results rows a figure shows, and where the run's data lives.

In a suite directory only the suite's cells count; elsewhere every row of ``results.jsonl``.
Where a method has several cells per class (seeds, budgets), curve figures show one:
the lowest seed, then the largest outlier budget and the most outlier classes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oodscope.bench.cells import OE_ALL
from oodscope.bench.results import ResultsLog
from oodscope.bench.suite_run import read_suite
from oodscope.bench.suite_stats import cell_rows
from oodscope.bench.suites import SuiteSpec
from oodscope.bench.summary import method_label


def finished_rows(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows to draw: the suite's finished cells (suite directory) or every row."""
    rows = ResultsLog(Path(directory) / "results.jsonl").load()
    info = read_suite(directory)
    if info is None:
        return rows
    return [r for _, r in cell_rows(SuiteSpec.from_json(info["spec"]), rows) if r is not None]


def _rank(value: Any) -> float:
    return float("inf") if value == OE_ALL else float(value)


def representatives(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """One row with a scores file per (data set, class, method label): lowest seed, then the
    largest ``n_oe``, then the most outlier classes."""
    best: dict[tuple[str, int, str], tuple[tuple[float, ...], dict[str, Any]]] = {}
    for r in rows:
        if not r.get("scores_file"):
            continue
        key = (str(r["dataset"]), int(r["id_class"]), method_label(r))
        rank = (int(r["seed"]), -_rank(r["n_oe"]), -_rank(r["oe_classes"]))
        if key not in best or rank < best[key][0]:
            best[key] = (rank, r)
    return {key: r for key, (_, r) in best.items()}


def data_root(directory: str | os.PathLike[str]) -> str | None:
    """The data root the run used: ``suite.json``'s, else ``run.json``'s (None = the default)."""
    info = read_suite(directory)
    if info is not None and info.get("data_root"):
        return str(info["data_root"])
    try:
        run = json.loads((Path(directory) / "run.json").read_text(encoding="utf-8"))
        root = run.get("config", {}).get("data_root")
    except (OSError, ValueError, AttributeError):
        return None
    return str(root) if root else None
