"""The report section of one benchmark directory: how it was produced, its tables and figures."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from oodscope.records import recorded_commands
from oodscope.report.html import esc, figure, table
from oodscope.report.inputs import RunDir
from oodscope.report.markdown import markdown_to_html
from oodscope.report.results import (
    auroc_by_class,
    group_by_config,
    metrics_by_method,
    preset_settings_table,
    settings_table,
    unique_cells,
)

FIGURE_KINDS = {"roc": "ROC curves", "hist": "Score histograms"}
NESTED = ("config", "spec")
HEADING_SHIFT = 3  # a file's "# title" becomes <h4>, below the section's <h2> and <h3>


def command_text(command: Any) -> str:
    """A recorded command (a list of arguments, or a string) as one shell-quoted line."""
    if isinstance(command, list):
        return shlex.join(str(a) for a in command)
    return command if isinstance(command, str) else json.dumps(command)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def _key_values(data: dict[str, Any], caption: str) -> str:
    return table(["key", "value"], [[k, _compact(v)] for k, v in data.items()], caption=caption)


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


def _command_block(label: str, started: Any, command: Any) -> str:
    when = f", started {esc(started)}" if started else ""
    return f"<div class=\"file\">{esc(label)}{when}</div><pre><code>{esc(command_text(command))}</code></pre>"


def _once(recorded: list[tuple[Any, Any, Any]]) -> list[tuple[Any, Any, Any]]:
    """``(file, started, command)`` entries with each invocation once: a suite's run.json repeats
    the commands of its suite.json, so where suite.json has any, run.json's are left out."""
    if any(file == "suite.json" for file, _, _ in recorded):
        return [r for r in recorded if r[0] == "suite.json"]
    return recorded


def _provenance(d: RunDir) -> tuple[list[str], list[str]]:
    """Command lines (``<pre>`` blocks) and configuration tables from suite.json and run.json,
    then the sources of merged cells (merges.json) with the commands that produced them."""
    records = [(label, data) for label, data in (("suite.json", d.suite), ("run.json", d.run)) if data is not None]
    own = [(label, started, command) for label, data in records for started, command in recorded_commands(data)]
    commands = [_command_block(label, started, command) for label, started, command in _once(own)]
    tables: list[str] = []
    for label, data in records:
        details: dict[str, Any] = {}
        for nested in NESTED:  # run.json's "config", suite.json's "spec": shown key by key
            if isinstance(data.get(nested), dict):
                details.update({k: v for k, v in data[nested].items() if k != "command"})
        details.update({k: v for k, v in data.items() if k not in (*NESTED, "command", "history", "settings")})
        if details:
            tables.append(_key_values(details, f"Configuration ({label})"))
    for m in d.merges:  # cells gathered from other directories by `oodscope merge`
        commands.append(f"<p class=\"meta\">{esc(m.get('cells_added'))} cells merged from "
                        f"<code>{esc(m.get('source'))}</code> at {esc(m.get('merged_at'))}, produced by:</p>")
        theirs = [(c.get("file"), c.get("started"), c["command"])
                  for c in m.get("commands") or [] if isinstance(c, dict) and c.get("command")]
        commands += [_command_block(f"{file} of that directory", started, command)
                     for file, started, command in _once(theirs)]
    return commands, tables


def _settings(d: RunDir, rows: list[dict[str, Any]]) -> list[str]:
    html = settings_table(rows)
    if html is None and d.run and isinstance(d.run.get("settings"), dict):
        html = preset_settings_table(d.run["settings"])
    return [html] if html else []


def _files_block(items: list[tuple[str, str]]) -> list[str]:
    return [f"<div class=\"file\">{esc(name)}</div>\n{markdown_to_html(text, HEADING_SHIFT)}"
            for name, text in items if text.strip()]


def render_dir(d: RunDir, anchor: str) -> str:
    """The ``<section>`` of one directory, with id ``anchor``."""
    rows = unique_cells(d.rows)
    parts = [f"<section id=\"{esc(anchor)}\">", f"<h2>{esc(d.path.name or d.path)}</h2>",
             f"<p class=\"meta\">Directory: <code>{esc(d.path.resolve())}</code>. "
             f"{len(d.rows)} rows in results.jsonl ({len(rows)} distinct cells).</p>"]
    if d.partial_last_line:
        parts.append("<p class=\"note\">The last line of results.jsonl is incomplete (an interrupted run) "
                     "and was left out.</p>")
    (commands, configs), settings = _provenance(d), _settings(d, rows)
    if commands or configs or settings:
        parts += ["<h3>How it was produced</h3>", *commands]
        parts += ["<div class=\"tables\">", *configs, *settings, "</div>"]
    suite = [(n, t) for n, t in d.markdown if n.startswith("table")]
    if any(t.strip() for _, t in suite) or any(r for _, r in d.csv_tables):
        parts.append("<h3>Suite tables</h3>")
        parts += _files_block(suite)
        parts += [f"<div class=\"file\">{esc(n)}</div>\n" + table(r[0], r[1:]) for n, r in d.csv_tables if r]
    summary = [(n, t) for n, t in d.markdown if n == "summary.md"]
    if any(t.strip() for _, t in summary):
        parts += ["<h3>Summary</h3>", *_files_block(summary)]
    if rows:
        parts.append("<h3>Results (from results.jsonl)</h3>")
        for title, group in group_by_config(rows).items():
            parts += [f"<h4>{esc(title)}</h4>", "<div class=\"tables\">", auroc_by_class(group),
                      metrics_by_method(group), "</div>"]
    other = [(n, t) for n, t in d.markdown if not n.startswith("table") and n != "summary.md"]
    if any(t.strip() for _, t in other):
        parts += ["<h3>Notes</h3>", *_files_block(other)]
    if d.figures:
        parts.append("<h3>Figures</h3><div class=\"figures\">")
        parts += [figure(data, figure_caption(name), name) for name, data in d.figures]
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)
