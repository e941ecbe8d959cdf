"""Sphinx extension of the oodscope site: the detector catalogue, generated from the registry.

* the ``{oodscope-catalogue}`` block of ``docs/reference/detectors.md`` is replaced, when the page
  is read, by a summary table of every registered detector (method, what fitting needs, ONNX export,
  presets, paper) and, per detector, a section with its settings, their defaults, per-preset values
  and one-line descriptions. The data is :func:`oodscope.detectors.catalogue.catalogue`, the same that ``oodscope methods`` and
  ``oodscope describe`` print, so the three cannot disagree.
* a ``{oodscope-results}`` block (one ``COLUMN: FILE`` line per column, the files relative to
  ``docs/``) is replaced by a table of AUROC (mean ± std over seeds) and seconds to score per
  detector, computed from those results files (``results.jsonl`` rows, kept under
  ``docs/lab/results/``) by :func:`oodscope.results.summary.metrics_table`, the code that writes a
  run's ``summary.md``; the best AUROC of each column in bold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

def _cell(text: Any) -> str:
    """``text`` safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> str:
    return "`" + json.dumps(value, ensure_ascii=False).replace("`", "'") + "`"


def _presets(entry: dict[str, Any]) -> str:
    return ", ".join(p for p, values in entry["presets"].items() if values) or "–"


def anchor(method: str) -> str:
    """The catalogue's anchor of ``method`` (``geom+`` -> ``detector-geom-plus``: HTML ids drop ``+``)."""
    return "detector-" + method.replace("+", "-plus")


def _export(entry: dict[str, Any]) -> str:
    return entry["onnx_export"].split(":", 1)[0]


def summary_markdown(entries: list[dict[str, Any]]) -> str:
    """The catalogue's summary table, in MyST Markdown."""
    lines = [
        f"{len(entries)} detectors are registered. Every setting can be given to "
        "`create(METHOD, preset=..., **settings)`, or as `--set KEY=VALUE` on the command line; "
        "a preset changes the settings listed under it (the others keep their defaults).",
        "",
        "| method | needs | ONNX | presets | paper |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(f"| [`{e['method']}`](#{anchor(e['method'])}) | {_cell(', '.join(e['needs']))} | "
                     f"{_cell(_export(e))} | {_cell(_presets(e))} | {_cell(e['paper'] or '–')} |")
    notes = sorted({e["onnx_export"] for e in entries if ":" in e["onnx_export"]})
    return "\n".join(lines + ([""] + [f"ONNX {_cell(n)}." for n in notes] if notes else []))


def details_markdown(entries: list[dict[str, Any]]) -> str:
    """One section per detector: its facts and its settings, in MyST Markdown."""
    lines: list[str] = []
    for e in entries:
        lines += ["", f"({anchor(e['method'])})=", f"## `{e['method']}`", ""]
        lines += [f"- **paper**: {_cell(e['paper'] or '–')}",
                  f"- **fitting needs**: {_cell(e['requires'])}",
                  f"- **a model of yours may stand in**: {'yes' if e['user_models'] else 'no'}",
                  f"- **ONNX export**: {_cell(e['onnx_export'])}",
                  f"- **presets**: {_cell(_presets(e))}"]
        if e.get("package"):
            extra = f" (`pip install 'oodscope[{e['extra']}]'`)" if e.get("extra") else ""
            lines.append(f"- **package**: {_cell(e['package'])}{extra}")
        if e["settings"]:
            lines += ["", "| setting | default | presets | description |", "|---|---|---|---|"]
            for s in e["settings"]:
                per = ", ".join(f"{p}: {_value(v)}" for p, v in s["presets"].items()) or "–"
                choices = f" (one of {', '.join(_value(c) for c in s['choices'])})" if s.get("choices") else ""
                lines.append(f"| `{s['name']}` | {_value(s['default'])} | {_cell(per)} | "
                             f"{_cell(s['help'])}{_cell(choices)} |")
        else:
            lines += ["", "No settings."]
    return "\n".join(lines)


CATALOGUE_MARK = "```{oodscope-catalogue}\n```"


def inject_catalogue(app: Sphinx, docname: str, source: list[str]) -> None:
    """Replace the page's ``{oodscope-catalogue}`` block with the generated catalogue, before MyST
    reads the page (so the per-detector headings are ordinary sections of it)."""
    if CATALOGUE_MARK not in source[0]:
        return
    from oodscope.detectors.catalogue import catalogue

    entries = catalogue()
    source[0] = source[0].replace(CATALOGUE_MARK, summary_markdown(entries) + "\n" + details_markdown(entries))


RESULTS_BLOCK = re.compile(r"^```\{oodscope-results\}\n(?P<body>.*?)^```$", re.M | re.S)


def results_markdown(body: str, docs: Path) -> str:
    """The table of a ``{oodscope-results}`` block: per detector, for each ``COLUMN: FILE`` line, the
    AUROC (mean ± std over seeds) and the seconds to score the test set, as ``summary.md`` gives them."""
    from oodscope.results.log import read_results
    from oodscope.results.summary import metrics_table

    columns: list[tuple[str, dict[str, tuple[str, str]]]] = []
    for line in (x.strip() for x in body.splitlines()):
        if not line:
            continue
        name, _, file = (part.strip() for part in line.partition(":"))
        rows, _ = read_results(docs / file)
        if not rows:
            raise ValueError(f"oodscope-results: no rows in {file}")
        table = metrics_table(rows)
        auroc, secs = table.header.index("AUROC"), table.header.index("score s")
        columns.append((name, {r[0]: (r[auroc], r[secs]) for r in table.rows}))
    methods = list(columns[0][1])
    best = [max(float(c[m][0].split()[0]) for m in methods if m in c) for _, c in columns]
    lines = ["| detector | " + " | ".join(f"{name} | score s" for name, _ in columns) + " |",
             "|---|" + "---:|---:|" * len(columns)]
    for m in methods:
        cells = []
        for (_, c), top in zip(columns, best):
            value, secs = c.get(m, ("–", "–"))
            bold = value != "–" and float(value.split()[0]) == top
            cells += [f"**{value}**" if bold else value, secs]
        lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def expand_results(text: str, docs: Path) -> str:
    """``text`` with every ``{oodscope-results}`` block replaced by its table."""
    return RESULTS_BLOCK.sub(lambda m: results_markdown(m["body"], docs), text)


def inject_results(app: Sphinx, docname: str, source: list[str]) -> None:
    """Replace a page's ``{oodscope-results}`` blocks by the tables computed from their files."""
    if "{oodscope-results}" in source[0]:
        source[0] = expand_results(source[0], Path(app.srcdir))


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx_click")
    app.connect("source-read", inject_catalogue)
    app.connect("source-read", inject_results)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
