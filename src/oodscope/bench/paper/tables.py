"""``table.md`` and ``table.csv`` of a suite, next to the paper's values where it gives them.

Entries are AUROC in percent. A missing entry is ``–``. A mean over classes that lacks some
classes is followed by ``(finished/total)``; ``mean ± std`` entries of the sweeps use only
seeds with every class finished and say ``(n/N seeds)`` when some seeds are missing; a
per-seed table below them shows what a half-finished seed has so far. Every table ends with
the compute time per method. The CSV holds the cells of the first markdown table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.bench.paper.methods import CLASS_NAMES, DEFAULT_ROW, METHOD_NAMES, TABLE2, TABLE2_ROWS, TABLE3_METHODS, TABLE3_OURS, table3_value
from oodscope.bench.paper.stats import ClassMean, SeedStat, cell_rows, class_mean, compute_seconds, per_class, seed_mean, sweep, with_unsupervised
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.protocols import Cell
from oodscope.results import MISSING, Table, label


def fmt(value: float | None) -> str:
    """AUROC with one decimal more than the paper, or ``–``."""
    return MISSING if value is None else f"{value:.2f}"


def fmt_paper(value: float | None) -> str:
    """A paper value as printed there (one decimal), or ``–``."""
    return MISSING if value is None else f"{value:.1f}"


def fmt_mean(m: ClassMean | None) -> str:
    """A class mean, with ``(k/N)`` when some classes are missing."""
    if m is None:
        return MISSING
    return fmt(m.mean) + ("" if m.n_classes == m.total_classes else f" ({m.n_classes}/{m.total_classes})")


def fmt_stat(s: SeedStat | None) -> str:
    """``mean ± std``, with ``(n/N seeds)`` when some seeds are incomplete."""
    if s is None:
        return MISSING
    return f"{s.mean:.2f} ± {s.std:.2f}" + ("" if s.n_seeds == s.total_seeds else f" ({s.n_seeds}/{s.total_seeds} seeds)")


def class_name(dataset: str, c: int) -> str:
    """``3`` or, for CIFAR-10, the paper's short name (``cat``)."""
    names = CLASS_NAMES.get(dataset)
    return names[c] if names and c < len(names) else str(c)


def _table2_selectors(spec: SuiteSpec) -> list[tuple[str, Any]]:
    out = []
    for title, method, variant in [*TABLE2_ROWS, DEFAULT_ROW]:
        if method in spec.methods:
            out.append((title, lambda c, want=label(method, variant): c.label == want))
    return out


def table2(spec: SuiteSpec, rows: list[dict[str, Any]]) -> list[tuple[str, Table]]:
    """Mean AUROC per feature variant beside the paper's, then the per-class values."""
    pairs = cell_rows(spec, rows)
    paper = TABLE2.get(spec.dataset, {})
    selectors = _table2_selectors(spec)
    main = Table(["method", f"{spec.dataset} (oodscope)", f"{spec.dataset} (paper)"], [])
    detail = Table(["class", *[title for title, _ in selectors]], [])
    values = {title: per_class(pairs, sel) for title, sel in selectors}
    for title, _ in selectors:
        main.rows.append([title, fmt_mean(class_mean(values[title], spec.classes)), fmt_paper(paper.get(title))])
    for c in spec.classes:
        detail.rows.append([class_name(spec.dataset, c), *[fmt(values[title].get(c)) for title, _ in selectors]])
    return [("Mean AUROC over classes", main), ("Per class", detail)]


def table3(spec: SuiteSpec, rows: list[dict[str, Any]]) -> list[tuple[str, Table]]:
    """Per-class AUROC per method, each beside the paper's value, and a mean row."""
    pairs = cell_rows(spec, rows)
    names = dict(TABLE3_METHODS)
    methods = [m for m in spec.methods if m in names]
    header = ["class"]
    for m in methods:
        header += [TABLE3_OURS[1] if m == TABLE3_OURS[0] else names[m], f"{names[m]} (paper)"]
    table = Table(header, [])
    values = {m: per_class(pairs, lambda cell, m=m: cell.method == m) for m in methods}
    for c in spec.classes:
        line = [class_name(spec.dataset, c)]
        for m in methods:
            line += [fmt(values[m].get(c)), fmt_paper(table3_value(spec.dataset, c, m))]
        table.rows.append(line)
    mean_line = ["mean"]
    for m in methods:
        mean_line += [fmt_mean(class_mean(values[m], spec.classes)), fmt_paper(table3_value(spec.dataset, "mean", m))]
    table.rows.append(mean_line)
    return [("AUROC per class", table)]


def sweep_table(spec: SuiteSpec, rows: list[dict[str, Any]]) -> list[tuple[str, Table]]:
    """Rows: the swept budget; columns: methods; entries mean ± std over seeds of the class mean."""
    spec = with_unsupervised(spec, rows)
    stats, flat = sweep(spec, rows)
    axis = spec.definition.axis
    first = "n_oe" if axis == "n_oe" else "outlier classes (k)"
    methods = list(spec.methods)
    table = Table([first, *[METHOD_NAMES.get(m, m) for m in methods]], [])
    xs = spec.n_oe if axis == "n_oe" else spec.oe_classes
    for x in xs:
        table.rows.append([str(x), *[fmt_stat(flat[m] if m in flat else stats[m][x]) for m in methods]])
    pairs = cell_rows(spec, rows)
    by_seed = Table(["seed", first, *[METHOD_NAMES.get(m, m) for m in methods]], [])
    for seed in spec.seeds:
        for x in xs:
            line = [str(seed), str(x)]
            for m in methods:
                select = (lambda c, m=m, x=x: c.method == m and (m in flat or c[axis] == x))
                line.append(fmt_mean(seed_mean(spec, pairs, select, seed)))
            by_seed.rows.append(line)
    return [("Class-averaged AUROC, mean ± std over seeds", table),
            ("Per seed: class-averaged AUROC (k/N: only k of the N classes finished)", by_seed)]


BUILDERS = {"table2": table2, "table3": table3, "fig4": sweep_table, "fig5": sweep_table}


def _notes(spec: SuiteSpec, pairs: list[tuple[Cell, Any]]) -> list[str]:
    """The lines under a suite table's title: what ran, how much is finished, caveats."""
    done = sum(r is not None for _, r in pairs)
    budget = f"n_oe {', '.join(map(str, spec.n_oe))}; outlier classes {', '.join(map(str, spec.oe_classes))}"
    out = [
        f"Data set {spec.dataset}, outliers from {spec.oe_dataset} ({budget}), preset {spec.preset}, "
        f"classes {', '.join(map(str, spec.classes))}, seeds {', '.join(map(str, spec.seeds))}.",
        f"Finished cells: {done} of {len(pairs)}. Entries are AUROC in percent; {MISSING} = not (yet) available.",
    ]
    if spec.dataset == "cifar10":
        out.append("The paper used 80 Million Tiny Images as outliers (withdrawn); these runs use "
                   f"{spec.oe_dataset}, so the paper's CIFAR-10 values are indicative only.")
    if spec.definition.axis is not None:
        flat = ", ".join(spec.unsupervised or [])
        out.append((f"{flat} uses no outliers: one value, repeated on every row. " if flat else "")
                   + "The paper gives no numbers for this figure, so there is no paper column.")
    return out


def fmt_duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``42 s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def compute_table(pairs: list[tuple[Cell, Any]]) -> Table:
    """Training plus scoring time per method over the finished cells, and their total."""
    seconds = compute_seconds(pairs)
    table = Table(["method", "cells", "compute time"], [])
    for m, sec in seconds.items():
        n = sum(1 for c, r in pairs if r is not None and c.method == m)
        table.rows.append([METHOD_NAMES.get(m, m), str(n), fmt_duration(sec)])
    n_all = sum(r is not None for _, r in pairs)
    table.rows.append(["total", str(n_all), fmt_duration(sum(seconds.values()))])
    return table


COMPUTE_NOTE = ("Training plus scoring time of the finished cells, summed (a network shared by several cells, "
                "such as GEOM's f, counts once; data loading is left out). Cells may have run in several "
                "invocations; their commands are in experiment.json (and merges.json for cells merged in from "
                "other directories).")


def sections(spec: SuiteSpec, rows: list[dict[str, Any]]) -> tuple[str, list[str], list[tuple[str, Table]]]:
    """A suite's title, the notes under it, and its ``(heading, table)`` sections, the compute
    time last (its table's caption explains it): what ``table.md`` and the report show."""
    spec = with_unsupervised(spec, rows)
    pairs = cell_rows(spec, rows)
    compute = compute_table(pairs)
    compute.caption = COMPUTE_NOTE
    return spec.definition.title, _notes(spec, pairs), [*BUILDERS[spec.suite](spec, rows), ("Compute time", compute)]


def render(spec: SuiteSpec, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The ``table.md`` and ``table.csv`` texts (the CSV holds the first table)."""
    title, notes, tables = sections(spec, rows)
    md = [f"# {title}", "", *notes, ""]
    for heading, table in tables:
        md += [f"## {heading}", ""] + ([table.caption, ""] if table.caption else []) + [table.markdown(), ""]
    return "\n".join(md), tables[0][1].csv()


def write_tables(directory: str | os.PathLike[str], spec: SuiteSpec, rows: list[dict[str, Any]]) -> list[Path]:
    """Write ``table.md`` and ``table.csv`` atomically; return their paths."""
    md, text = render(spec, rows)
    d = Path(directory)
    return [write_text_atomic(d / "table.md", md), write_text_atomic(d / "table.csv", text)]
