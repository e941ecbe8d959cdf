"""``table.md`` of the measurement suites (``robustness``, ``verification``): the title and tables
of each, from its rows. Used by the runner, ``bench --tables-only`` and the report; no torch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.bench.measured import robustness_tables, verification_tables
from oodscope.results.tables import Table

TableMaker = Callable[[list[dict[str, Any]]], list[Table]]
# suite -> (title of table.md, the tables of the rows)
SUITE_TABLES: dict[str, tuple[str, TableMaker]] = {
    "robustness": ("Robustness suite", robustness_tables.tables),
    "verification": ("Verification suite", verification_tables.tables),
}


def render(title: str, rows: list[dict[str, Any]], tables: list[Table]) -> str:
    seeds = sorted({str(r.get("seed")) for r in rows})
    out = [f"# {title}", "", f"Seeds: {', '.join(seeds) or '–'}; {len(rows)} measurements.", ""]
    for t in tables:
        out += [t.caption + ":", "", t.markdown(), ""]
    return "\n".join(out)


def write_tables(directory: str | Path, rows: list[dict[str, Any]], suite: str) -> Path:
    """Write ``directory/table.md`` atomically with the tables of measurement suite ``suite``."""
    title, make = SUITE_TABLES[suite]
    return write_text_atomic(Path(directory) / "table.md", render(title, rows, make(rows)))
