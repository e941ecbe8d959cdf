"""The report section of one benchmark directory: its results first (the suite's tables or the
tables of its rows, then the figures, drawing those its saved scores allow when they are not
there yet), then, folded, how it was produced (commands, configuration, settings) and notes."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from oodscope.bench.experiment import ReportTables, experiment_of
from oodscope.bench.paper.stats import with_unsupervised
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.errors import DataError, InputError
from oodscope.figures import figure_names, hist_figure, png_bytes, roc_figure, scored_cells, sweep_figure
from oodscope.figures.rows import drawn_rows
from oodscope.report import provenance
from oodscope.report.html import esc, figure
from oodscope.report.inputs import RunDir
from oodscope.results import Table, first_per_cell, metrics_table, per_class_table
from oodscope.results.summary import groups

FIGURE_KINDS = {"roc": "ROC curves", "hist": "Score histograms"}
DRAWN = " (drawn for this report from the saved scores)"


def figure_caption(name: str) -> str:
    """A caption from a figure's file name: ``fig3_class2.png`` -> ``Figure 3, class 2``,
    ``roc_layers.png`` -> ``ROC curves: layers``; the file name follows in parentheses."""
    stem = name.rsplit(".", 1)[0]
    words = lambda s: re.sub(r"class(\d+)", r"class \1", s.replace("_", " ")).strip()  # noqa: E731
    if m := re.fullmatch(r"fig(\d+)(?:_(.*))?", stem, flags=re.IGNORECASE):
        text = f"Figure {m.group(1)}" + (f", {words(m.group(2))}" if m.group(2) else "")
    elif (kind := stem.split("_", 1)[0].lower()) in FIGURE_KINDS and "_" in stem:
        text = f"{FIGURE_KINDS[kind]}: {words(stem.split('_', 1)[1])}"
    else:
        text = words(stem) or stem
    return f"{text} ({name})"


def _spec(d: RunDir, rows: list[dict[str, Any]]) -> SuiteSpec | None:
    """The suite of the directory, or None (no suite record, or one whose spec is incomplete)."""
    if d.suite is None or not isinstance(d.suite.get("spec"), dict):
        return None
    try:
        spec = SuiteSpec.from_json(d.suite["spec"])
        spec.definition  # noqa: B018 - an unknown suite name raises KeyError
    except (TypeError, KeyError, ValueError):
        return None
    return with_unsupervised(spec, rows)


def _tables(tables: list[Table]) -> str:
    return "<div class=\"tables\">" + "".join(t.html() for t in tables) + "</div>"


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for title, group in groups(rows):
        tables = [t for t in (per_class_table(group), metrics_table(group)) if t is not None]
        out += [f"<h4>{esc(title)}</h4>", _tables(tables)]
    return out


def own_tables(d: RunDir, rows: list[dict[str, Any]]) -> ReportTables | None:
    """The tables the directory's experiment shows of it (None: it has none of its own, or the
    directory holds no experiment's results)."""
    try:
        cls, _ = experiment_of(d.path)
        return cls.report(d.path, rows)
    except (InputError, DataError, OSError, KeyError, TypeError, ValueError):
        return None


def results(d: RunDir, rows: list[dict[str, Any]]) -> list[str]:
    """The headline tables: the experiment's own (a suite's beside the paper's values), with every
    metric of its rows folded below; otherwise the tables of the rows, per configuration."""
    own = own_tables(d, rows)
    if not rows and not d.csv_tables and (own is None or not own.tables):
        return []
    parts = ["<h3>Results</h3>"]
    if own is not None and own.tables:
        if own.title:
            parts.append(f"<h4>{esc(own.title)}</h4>")
        if own.notes:
            parts.append("<p class=\"notes\">" + "<br>".join(esc(n) for n in own.notes) + "</p>")
        for heading, table in own.tables:
            note = [f"<p class=\"notes\">{esc(table.caption)}</p>"] if table.caption else []
            parts += [f"<h5>{esc(heading)}</h5>", *note, replace(table, caption="").html()]
        if rows:
            parts += ["<details><summary>Every metric, per configuration</summary>", *_summary(rows), "</details>"]
    elif rows:
        parts += _summary(rows)
    for name, table in d.csv_tables:
        if table:
            parts += [f"<div class=\"file\">{esc(name)}</div>", Table(table[0], table[1:]).html()]
    return parts


def missing_figures(d: RunDir, spec: SuiteSpec | None, rows: list[dict[str, Any]]) -> tuple[list[tuple[str, bytes]], str | None]:
    """Figures the directory's results and saved scores allow but that are not in it yet, drawn
    in memory: ROC curves and histograms per data set or benchmark, and a sweep suite's figure.
    Returns them and a note when saved scores could not be read."""
    have = {name for name, _ in d.figures}
    out: list[tuple[str, bytes]] = []
    note = None
    if spec is not None and rows and f"{spec.suite}.png" not in have:
        fig = sweep_figure(spec, rows)
        if fig is not None:
            out.append((f"{spec.suite}.png", png_bytes(fig)))
    try:
        scored = scored_cells(d.path, drawn_rows(rows, spec)) if rows else {}
    except DataError as e:
        scored, note = {}, f"Figures from saved scores were not drawn: {e}"
    for name in figure_names(scored):
        for kind, make in (("roc", roc_figure), ("hist", hist_figure)):
            file = f"{kind}_{name}.png"
            if file not in have:
                out.append((file, png_bytes(make(scored, name))))
    return out, note


def render_dir(d: RunDir, anchor: str) -> str:
    """The ``<section>`` of one directory, with id ``anchor``."""
    rows = list(first_per_cell(d.rows).values())
    spec = _spec(d, rows)
    held = (f"{len(d.rows)} rows in results.jsonl ({len(rows)} distinct cells)." if d.rows
            else "No benchmark results: its figures, tables and notes.")
    parts = [f"<section id=\"{esc(anchor)}\">", f"<h2>{esc(d.path.name or d.path)}</h2>",
             f"<p class=\"meta\">Directory: <code>{esc(d.path.resolve())}</code>. {held}</p>"]
    if d.partial_last_line:
        parts.append("<p class=\"note\">The last line of results.jsonl is incomplete (an interrupted run) "
                     "and was left out.</p>")
    parts += results(d, rows)
    drawn, note = missing_figures(d, spec, rows)
    if d.figures or drawn or note:
        parts.append("<h3>Figures</h3>")
        if note:
            parts.append(f"<p class=\"note\">{esc(note)}</p>")
        parts.append("<div class=\"figures\">")
        parts += [figure(data, figure_caption(name), name) for name, data in d.figures]
        parts += [figure(data, figure_caption(name) + DRAWN, name) for name, data in drawn]
        parts.append("</div>")
    commands, configs = provenance.commands(d), provenance.configurations(d)
    settings = provenance.settings(d, rows)
    if commands or configs or settings:
        parts += ["<details><summary>How it was produced: commands, configuration, settings</summary>", *commands,
                  _tables([*configs, *([settings] if settings else [])]), "</details>"]
    for name, text in d.notes:
        if text.strip():
            parts += [f"<details><summary>Notes: {esc(name)}</summary><pre>{esc(text)}</pre></details>"]
    parts.append("</section>")
    return "\n".join(parts)
