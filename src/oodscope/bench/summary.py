"""``summary.md``: AUROC per class and method of a benchmark's finished cells.

For every configuration (data set, outlier set, number of outliers, outlier classes,
preset) one markdown table: classes as rows, methods as columns, each entry the AUROC
in percent averaged over the finished seeds, and a final ``mean`` row averaging the
classes shown in that column. A second table gives each method's mean AUROC, AUPR-in,
AUPR-out, FPR at 95 % TPR and training seconds over all its finished cells.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.bench.atomic import write_text_atomic

MISSING = "-"


def method_label(row: dict[str, Any]) -> str:
    """``method``, or ``method[z1+z4]`` for a taps variant."""
    taps = row.get("taps_variant")
    return row["method"] if not taps else f"{row['method']}[{'+'.join(taps)}]"


def _config_title(key: tuple[Any, ...]) -> str:
    dataset, oe_dataset, n_oe, oe_classes, preset = key
    return f"{dataset}, outliers: {n_oe} from {oe_classes} classes of {oe_dataset}, preset {preset}"


def _fmt(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def auroc_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of mean-over-seeds AUROC, classes x methods, with a mean row."""
    methods = list(dict.fromkeys(method_label(r) for r in rows))
    classes = sorted({int(r["id_class"]) for r in rows})
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    for r in rows:
        values[(int(r["id_class"]), method_label(r))].append(float(r["auroc"]))
    lines = ["| class | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    per_method: dict[str, list[float]] = defaultdict(list)
    for c in classes:
        cells = []
        for m in methods:
            v = values.get((c, m))
            mean = float(np.mean(v)) if v else None
            if mean is not None:
                per_method[m].append(mean)
            cells.append(_fmt(mean))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    means = [_fmt(float(np.mean(per_method[m])) if per_method[m] else None) for m in methods]
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines)


def metrics_table(rows: list[dict[str, Any]]) -> str:
    """Per method: number of cells and mean AUROC, AUPR-in, AUPR-out, FPR95, fit seconds."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[method_label(r)].append(r)
    lines = [
        "| method | cells | AUROC | AUPR-in | AUPR-out | FPR95 | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, rs in by_method.items():
        cols = [float(np.mean([r[k] for r in rs])) for k in ("auroc", "aupr_in", "aupr_out", "fpr95", "fit_seconds")]
        lines.append(f"| {m} | {len(rs)} | " + " | ".join(f"{v:.2f}" if i < 4 else f"{v:.1f}" for i, v in enumerate(cols)) + " |")
    return "\n".join(lines)


def render_summary(rows: list[dict[str, Any]], total_cells: int | None = None, grid_finished: int | None = None) -> str:
    """The whole ``summary.md`` text for these results rows.

    ``total_cells`` / ``grid_finished``: size of the current run's grid and how many of its
    cells are finished (default: all rows belong to the grid).
    """
    out = ["# oodscope benchmark summary", ""]
    done = len(rows) if grid_finished is None else grid_finished
    progress = f"{done} of {total_cells}" if total_cells is not None else str(done)
    extra = f" ({len(rows)} rows in results.jsonl in all)" if len(rows) != done else ""
    out += [f"Finished cells: {progress}{extra}. Entries are AUROC in percent, averaged over finished seeds.", ""]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["oe_dataset"], r["n_oe"], r["oe_classes"], r["preset"])].append(r)
    for key, rs in groups.items():
        seeds = sorted({r["seed"] for r in rs})
        out += [f"## {_config_title(key)}", "", f"Seeds: {', '.join(map(str, seeds))}", ""]
        out += [auroc_table(rs), "", metrics_table(rs), ""]
    if not rows:
        out += ["No finished cells yet.", ""]
    return "\n".join(out)


def write_summary(directory: str | os.PathLike[str], rows: list[dict[str, Any]], total_cells: int | None = None,
                  grid_finished: int | None = None) -> Path:
    """Write ``directory/summary.md`` (see :func:`render_summary`) atomically: a temporary
    file in ``directory`` replaced into place with ``os.replace``."""
    return write_text_atomic(Path(directory) / "summary.md", render_summary(rows, total_cells, grid_finished))
