"""``table.md`` of the measurement suites (:mod:`oodscope.bench.measured.common`): which tables a results
directory gets is told by the plan file the suite wrote beside its results (``robustness.json``,
``verification.json``). Used by the runner, ``bench --tables-only`` and the report; no torch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.bench.measured import robustness_tables, verification_tables
from oodscope.results.tables import Table

TableMaker = Callable[[list[dict[str, Any]]], list[Table]]
# plan file -> (title of table.md, the tables of the rows)
PLAN_SUITES: dict[str, tuple[str, TableMaker]] = {
    "robustness.json": ("Robustness suite", robustness_tables.tables),
    "verification.json": ("Verification suite", verification_tables.tables),
}


def plan_suite(directory: str | Path) -> str | None:
    """The plan file of the measurement suite whose results are in ``directory``, or None."""
    return next((name for name in PLAN_SUITES if (Path(directory) / name).is_file()), None)


def suite_tables(directory: str | Path, rows: list[dict[str, Any]]) -> list[Table] | None:
    """The tables of a measurement suite's ``rows`` (None when ``directory`` holds no such suite)."""
    name = plan_suite(directory)
    return None if name is None else PLAN_SUITES[name][1](rows)


def render(title: str, rows: list[dict[str, Any]], tables: list[Table]) -> str:
    seeds = sorted({str(r.get("seed")) for r in rows})
    out = [f"# {title}", "", f"Seeds: {', '.join(seeds) or '–'}; {len(rows)} measurements.", ""]
    for t in tables:
        out += [t.caption + ":", "", t.markdown(), ""]
    return "\n".join(out)


def write_tables(directory: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``directory/table.md`` atomically, with the tables of the suite whose plan file is there."""
    name = plan_suite(directory)
    if name is None:
        raise FileNotFoundError(f"{directory}: no plan file of a measurement suite ({', '.join(PLAN_SUITES)})")
    title, make = PLAN_SUITES[name]
    return write_text_atomic(Path(directory) / "table.md", render(title, rows, make(rows)))
