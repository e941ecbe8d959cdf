"""Tables built from the rows of ``results.jsonl``: AUROC per class and method, the other
metrics and timings per method, and the detector settings the rows were computed with.

Rows are grouped by configuration (data set, outlier set, number of outliers, outlier
classes, preset); a cell finished twice counts once (its first row, as ``oodscope bench``
does). Values are means over the rows available; a missing value shows as ``-``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from statistics import fmean
from typing import Any

from oodscope.report.html import table

MISSING = "-"
CONFIG_KEYS = ("dataset", "oe_dataset", "n_oe", "oe_classes", "preset")
CELL_KEYS = ("dataset", "method", "taps_variant", "id_class", "n_oe", "oe_classes", "oe_dataset", "seed", "preset")
METRICS = (("auroc", "AUROC", 2), ("aupr_in", "AUPR-in", 2), ("aupr_out", "AUPR-out", 2), ("fpr95", "FPR95", 2),
           ("fit_seconds", "fit s", 1), ("score_seconds", "score s", 1))
MAX_VALUES_SHOWN = 6


def method_label(row: dict[str, Any]) -> str:
    """``method``, or ``method[z1+z4]`` for a taps variant."""
    taps = row.get("taps_variant")
    method = str(row.get("method", "?"))
    return method if not taps else f"{method}[{'+'.join(map(str, taps))}]"


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str)


def unique_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without repeated cells (the first row of each cell is kept)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        seen.setdefault(_hashable([r.get(k) for k in CELL_KEYS]), r)
    return list(seen.values())


def group_by_config(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by configuration, keyed by a readable title, in order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        d, oe, n, k, p = (r.get(key, "?") for key in CONFIG_KEYS)
        groups[f"{d}, outliers: {n} from {k} classes of {oe}, preset {p}"].append(r)
    return dict(groups)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [v for v in (_number(r.get(key)) for r in rows) if v is not None]
    return fmean(values) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _class_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def auroc_by_class(rows: list[dict[str, Any]]) -> str:
    """HTML table: classes as rows, methods as columns, mean AUROC over seeds, a ``mean`` row
    (the mean of the class means shown in that column)."""
    methods = list(dict.fromkeys(method_label(r) for r in rows))
    classes = sorted({r.get("id_class") for r in rows}, key=_class_key)
    cells: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r.get("id_class"), method_label(r))].append(r)
    body, column_means = [], defaultdict(list)
    for c in classes:
        line = [str(c)]
        for m in methods:
            v = _mean(cells.get((c, m), []), "auroc")
            if v is not None:
                column_means[m].append(v)
            line.append(_fmt(v))
        body.append(line)
    body.append(["mean"] + [_fmt(fmean(column_means[m]) if column_means[m] else None) for m in methods])
    return table(["class", *methods], body, [None] + ["right"] * len(methods),
                 caption="AUROC (%) per in-distribution class, mean over seeds")


def metrics_by_method(rows: list[dict[str, Any]]) -> str:
    """HTML table: per method the number of cells and seeds, mean AUROC, AUPR-in, AUPR-out,
    FPR at 95 % TPR (all %) and mean training and scoring seconds per cell."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[method_label(r)].append(r)
    body = []
    for m, rs in by_method.items():
        seeds = len({_hashable(r.get("seed")) for r in rs})
        body.append([m, str(len(rs)), str(seeds)] + [_fmt(_mean(rs, k), digits) for k, _, digits in METRICS])
    header = ["method", "cells", "seeds"] + [title for _, title, _ in METRICS]
    return table(header, body, [None] + ["right"] * (len(header) - 1),
                 caption="Mean over cells: metrics in %, times in seconds per cell")


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def settings_table(rows: list[dict[str, Any]]) -> str | None:
    """HTML table of the detector settings in the rows: settings as rows, methods as columns.
    A setting that differs between a method's rows (e.g. ``seed``) lists its values."""
    by_method: dict[str, dict[str, dict[str, None]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        settings = r.get("settings")
        if isinstance(settings, dict):
            for k, v in settings.items():
                by_method[method_label(r)][k][_compact(v)] = None
    if not by_method:
        return None
    return _settings_html({m: {k: list(vs) for k, vs in s.items()} for m, s in by_method.items()},
                          "Detector settings recorded in the results")


def preset_settings_table(settings: dict[str, Any]) -> str | None:
    """HTML table of ``run.json``'s per-method ``settings`` (used when there are no rows)."""
    per = {m: {k: [_compact(v)] for k, v in s.items()} for m, s in settings.items() if isinstance(s, dict)}
    return _settings_html(per, "Preset settings from run.json") if per else None


def _settings_html(per_method: dict[str, dict[str, list[str]]], caption: str) -> str:
    methods = list(per_method)
    keys = sorted({k for s in per_method.values() for k in s})
    body = []
    for k in keys:
        line = [k]
        for m in methods:
            values = per_method[m].get(k)
            if not values:
                line.append("")
            elif len(values) <= MAX_VALUES_SHOWN:
                line.append(", ".join(values))
            else:
                line.append(", ".join(values[:MAX_VALUES_SHOWN]) + f", … ({len(values)} values)")
        body.append(line)
    return table(["setting", *methods], body, caption=caption)
