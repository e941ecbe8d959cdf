"""How a benchmark directory was produced, for the folded part of its report section: the
recorded commands, the configuration of its record (the ``paper_suite`` and ``grid`` sections of
``experiment.json``, or ``suite.json`` / ``run.json`` in a directory written before), the detector
settings of its rows and the sources of merged cells."""

from __future__ import annotations

import json
import shlex
from typing import Any

from oodscope.report.html import esc
from oodscope.report.inputs import RunDir
from oodscope.results import RECORD, SECTIONS, Table, recorded_commands, row_label, section_label

NESTED = ("config", "spec")
MAX_VALUES_SHOWN = 6


def command_text(command: Any) -> str:
    """A recorded command (a list of arguments, or a string) as one shell-quoted line."""
    if isinstance(command, list):
        return shlex.join(str(a) for a in command)
    return command if isinstance(command, str) else json.dumps(command)


def compact(value: Any) -> str:
    """A value as short text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def _command_block(label: str, started: Any, command: Any) -> str:
    when = f", started {esc(started)}" if started else ""
    return f"<div class=\"file\">{esc(label)}{when}</div><pre><code>{esc(command_text(command))}</code></pre>"


# where each invocation is recorded once, in the order preferred: experiment.json's header records
# every invocation; a suite's grid section (run.json) repeats the commands of its paper_suite (suite.json)
ONCE = (RECORD, section_label(RECORD, "paper_suite"), *SECTIONS["paper_suite"])


def _once(recorded: list[tuple[Any, Any, Any]]) -> list[tuple[Any, Any, Any]]:
    """``(file, started, command)`` entries with each invocation once: only the first record of
    :data:`ONCE` that has any is kept (all of them when none has)."""
    for name in ONCE:
        if any(file == name for file, _, _ in recorded):
            return [r for r in recorded if r[0] == name]
    return recorded


def _records(d: RunDir) -> list[tuple[str, dict[str, Any]]]:
    """``(label, record)`` of the suite's record and the grid's, those the directory has."""
    return [(d.sources.get(name, f"{name}.json"), data) for name, data in (("suite", d.suite), ("run", d.run))
            if data is not None]


def commands(d: RunDir) -> list[str]:
    """``<pre>`` blocks of the commands of the suite's and the grid's records, then the sources of
    merged cells (merges.json) with the commands that produced them."""
    records = _records(d)
    own = [(label, started, command) for label, data in records for started, command in recorded_commands(data)]
    out = [_command_block(label, started, command) for label, started, command in _once(own)]
    for m in d.merges:  # cells gathered from other directories by `oodscope merge`
        out.append(f"<p class=\"meta\">{esc(m.get('cells_added'))} cells merged from "
                   f"<code>{esc(m.get('source'))}</code> at {esc(m.get('merged_at'))}, produced by:</p>")
        theirs = [(c.get("file"), c.get("started"), c["command"])
                  for c in m.get("commands") or [] if isinstance(c, dict) and c.get("command")]
        out += [_command_block(f"{file} of that directory", started, command) for file, started, command in _once(theirs)]
    return out


def configurations(d: RunDir) -> list[Table]:
    """Key-value tables of the suite's and the grid's records (their nested ``spec`` / ``config`` key
    by key)."""
    tables = []
    for label, data in _records(d):
        details: dict[str, Any] = {}
        for nested in NESTED:
            if isinstance(data.get(nested), dict):
                details.update({k: v for k, v in data[nested].items() if k != "command"})
        details.update({k: v for k, v in data.items() if k not in (*NESTED, "command", "history", "settings")})
        if details:
            tables.append(Table(["key", "value"], [[k, compact(v)] for k, v in details.items()], [None, None],
                                caption=f"Configuration ({label})"))
    return tables


def _settings_table(per_method: dict[str, dict[str, list[str]]], caption: str) -> Table:
    methods = list(per_method)
    table = Table(["setting", *methods], align=[None] * (len(methods) + 1), caption=caption)
    for k in sorted({k for s in per_method.values() for k in s}):
        line = [k]
        for m in methods:
            values = per_method[m].get(k) or []
            shown = ", ".join(values[:MAX_VALUES_SHOWN])
            line.append(shown + (f", … ({len(values)} values)" if len(values) > MAX_VALUES_SHOWN else ""))
        table.rows.append(line)
    return table


def settings(d: RunDir, rows: list[dict[str, Any]]) -> Table | None:
    """The detector settings in the rows (settings as rows, methods as columns; a setting that
    differs between a method's rows lists its values), else the grid record's per-method settings. The
    precision the scores were computed in is always a row: the row's own, else what its settings
    imply (rows written before it was recorded scored in bfloat16 when ``amp`` was on)."""
    by_method: dict[str, dict[str, dict[str, None]]] = {}
    for r in rows:
        if isinstance(r.get("settings"), dict):
            found = r["settings"]
            precision = r.get("precision") or found.get("precision") or ("bfloat16" if found.get("amp") else "float32")
            for k, v in {**found, "precision": precision}.items():
                by_method.setdefault(row_label(r), {}).setdefault(k, {})[compact(v)] = None
    if by_method:
        return _settings_table({m: {k: list(v) for k, v in s.items()} for m, s in by_method.items()},
                               "Detector settings recorded in the results")
    planned = d.run.get("settings") if d.run else None
    if isinstance(planned, dict):
        per = {m: {k: [compact(v)] for k, v in s.items()} for m, s in planned.items() if isinstance(s, dict)}
        if per:
            return _settings_table(per, f"Preset settings from {d.sources.get('run', 'run.json')}")
    return None
