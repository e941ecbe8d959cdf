"""Tables of any benchmark's rows, whatever its protocol: the text of ``summary.md`` and the
results section of the HTML report.

Rows are grouped by configuration (:func:`oodscope.results.schema.config_key`: protocol, data
set, preset and every protocol field but the in-distribution class). Per group:

* when the protocol has an in-distribution class (one-class): AUROC per class (rows) and
  method (columns), each the mean over the finished seeds, and a ``mean`` row;
* always: per method the number of cells and seeds and the mean of every metric the rows hold
  (AUROC, AUPR-in, AUPR-out, FPR95, then others such as accuracy) and of the fit and score
  seconds. Without a class axis each cell is one seed, and metrics read ``mean ± std`` over them.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean, pstdev
from typing import Any

from oodscope.results.schema import CLASS_FIELD, METRIC_NAMES, config_key, config_title, field, metric, table_label
from oodscope.results.tables import MISSING, Table


def groups(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(title, rows)`` per configuration, in order of first appearance."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    titles: dict[str, str] = {}
    for r in rows:
        key = config_key(r)
        by_key.setdefault(key, []).append(r)
        titles.setdefault(key, config_title(r))
    return [(titles[k], rs) for k, rs in by_key.items()]


def fmt(value: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals, or ``–``."""
    return MISSING if value is None else f"{value:.{digits}f}"


def _class_order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def has_classes(rows: list[dict[str, Any]]) -> bool:
    """Whether the rows' protocol has an in-distribution class field."""
    return any(CLASS_FIELD in r["protocol_fields"] for r in rows)


def per_class_table(rows: list[dict[str, Any]], name: str = "auroc") -> Table | None:
    """Classes x methods, each the mean of ``name`` over finished seeds, with a ``mean`` row (the mean
    of the class values shown in that column); None when the protocol has no class field."""
    if not has_classes(rows):
        return None
    methods = list(dict.fromkeys(table_label(r) for r in rows))
    classes = sorted({field(r, CLASS_FIELD) for r in rows}, key=_class_order)
    values: dict[tuple[Any, str], list[float]] = defaultdict(list)
    for r in rows:
        v = metric(r, name)
        if v is not None:
            values[(field(r, CLASS_FIELD), table_label(r))].append(v)
    table = Table(["class", *methods], caption=f"{METRIC_NAMES.get(name, name)} (%) per in-distribution class, "
                                                 "mean over seeds")
    column: dict[str, list[float]] = defaultdict(list)
    for c in classes:
        line = [str(c)]
        for m in methods:
            v = values.get((c, m))
            mean = fmean(v) if v else None
            if mean is not None:
                column[m].append(mean)
            line.append(fmt(mean))
        table.rows.append(line)
    table.rows.append(["mean", *[fmt(fmean(column[m]) if column[m] else None) for m in methods]])
    return table


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics the rows hold: the four OOD metrics first, then the others by name."""
    present = {k for r in rows for k in r["metrics"]}
    first = [m for m in METRIC_NAMES if m in present]
    return first + sorted(present - set(first))


def _number(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


DIGITS = {"nll": 4, "temperature": 3}  # metrics shown with more decimals than the 2 of percentages


def _summary(values: list[float], spread: bool, digits: int = 2) -> str:
    if not values:
        return MISSING
    if spread and len(values) > 1:
        return f"{fmean(values):.{digits}f} ± {pstdev(values):.{digits}f}"
    return fmt(fmean(values), digits)


def metrics_table(rows: list[dict[str, Any]]) -> Table:
    """Per method: cells, seeds, every metric and the fit / score seconds per cell, averaged over
    the cells (``mean ± std`` over seeds when the protocol has no class axis)."""
    spread = not has_classes(rows)
    names = metric_names(rows)
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[table_label(r)].append(r)
    header = ["method", "cells", "seeds", *[METRIC_NAMES.get(n, n) for n in names], "fit s", "score s"]
    what = "mean ± std over seeds" if spread else "mean over cells"
    plain = [METRIC_NAMES[n] for n in ("nll", "temperature") if n in names]
    units = f" ({' and '.join(plain)} not)" if plain else ""
    table = Table(header, caption=f"Metrics in %{units}, {what}; seconds per cell")
    for m, rs in by_method.items():
        seeds = len({str(r.get("seed")) for r in rs})
        line = [m, str(len(rs)), str(seeds)]
        for n in names:
            line.append(_summary([v for v in (metric(r, n) for r in rs) if v is not None], spread, DIGITS.get(n, 2)))
        for key in ("fit_seconds", "score_seconds"):
            secs = [v for v in (_number(r, key) for r in rs) if v is not None]
            line.append(fmt(fmean(secs), 1) if secs else MISSING)
        table.rows.append(line)
    return table


def render_summary(rows: list[dict[str, Any]], total_cells: int | None = None, grid_finished: int | None = None) -> str:
    """The text of ``summary.md`` for these (normalised) rows.

    ``total_cells`` / ``grid_finished``: size of the current run's grid and how many of its cells
    are finished (default: every row belongs to the grid).
    """
    done = len(rows) if grid_finished is None else grid_finished
    progress = f"{done} of {total_cells}" if total_cells is not None else str(done)
    extra = f" ({len(rows)} rows in results.jsonl in all)" if len(rows) != done else ""
    out = ["# oodscope benchmark summary", "",
           f"Finished cells: {progress}{extra}. Metrics in percent; {MISSING} = not available.", ""]
    for title, rs in groups(rows):
        seeds = sorted({str(r.get("seed")) for r in rs}, key=lambda s: (len(s), s))
        out += [f"## {title}", "", f"Seeds: {', '.join(seeds)}", ""]
        for table in (t for t in (per_class_table(rs), metrics_table(rs)) if t is not None):
            out += [table.caption + ":", "", table.markdown(), ""]
    if not rows:
        out += ["No finished cells yet.", ""]
    return "\n".join(out)
