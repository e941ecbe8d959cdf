"""The catalogue of detectors, read from their declarations without fitting anything: for each
registered method its paper, what fitting needs, whether it exports to ONNX, its presets, and every
setting with its default, the values the presets give it and its one-line description
(:meth:`~oodscope.detectors.base.Detector.settings_help`).

``oodscope methods`` prints :func:`methods_table`, ``oodscope describe METHOD`` :func:`describe`;
the documentation's catalogue is generated from the same data (:func:`catalogue`, or
``oodscope methods --format json``), so the three say the same.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from oodscope.detectors.base import PRESET_NAMES, Detector
from oodscope.detectors.registry import registry
from oodscope.errors import InputError

FORMATS = ("text", "markdown", "json")


def find(method: str) -> type[Detector]:
    """The class registered as ``method``.

    Raises:
        InputError: unknown method, in one line naming the close matches (else every method).
    """
    known = registry()
    if method in known:
        return known[method]
    close = difflib.get_close_matches(method.lower(), list(known), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    raise InputError(f"unknown method {method!r}; {hint} ('oodscope methods' lists every method)")


def entry(method: str) -> dict[str, Any]:
    """Everything the catalogue says of ``method`` (JSON-able)."""
    cls = find(method)
    r = cls.requires
    described = cls.settings_help()
    settings = [{"name": key, "default": default, "help": described.get(key, ""),
                 "choices": list(cls.choices[key]) if key in cls.choices else None,
                 "presets": {p: cls.presets[p][key] for p in PRESET_NAMES if key in cls.presets.get(p, {})}}
                for key, default in cls.defaults.items()]
    return {
        "method": cls.method, "paper": cls.paper, "needs": r.needs(), "requires": r.describe(),
        "outliers": r.outliers, "labels": r.labels, "validation": r.validation, "inputs": r.inputs,
        "upstream": r.upstream.kind if r.upstream is not None else None, "user_models": r.takes_user_models(),
        "package": r.package, "extra": r.extra, "family": cls.family, "onnx_export": cls.onnx_export(),
        "presets": {p: dict(cls.presets.get(p, {})) for p in PRESET_NAMES}, "settings": settings,
    }


def catalogue() -> list[dict[str, Any]]:
    """:func:`entry` of every registered detector, in display order."""
    return [entry(m) for m in registry()]


def _short_export(value: str) -> str:
    return value.split(":", 1)[0]


def _presets_cell(e: dict[str, Any]) -> str:
    """The presets that change a setting ("-": every preset is the defaults)."""
    return ", ".join(p for p, values in e["presets"].items() if values) or "-"


def _presets_line(e: dict[str, Any]) -> str:
    changed = [p for p, values in e["presets"].items() if values]
    same = [p for p, values in e["presets"].items() if not values]
    if not changed:
        return "every preset is the defaults"
    return ", ".join(changed) + (f" ({', '.join(same)}: the defaults)" if same else "") + \
        "; create(method, preset=NAME), oodscope fit --preset NAME"


def _rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    return [[e["method"], ", ".join(e["needs"]), _short_export(e["onnx_export"]), _presets_cell(e), e["paper"] or "-"]
            for e in entries]


HEADER = ["method", "needs", "ONNX", "presets", "paper"]


def _export_notes(entries: list[dict[str, Any]]) -> list[str]:
    """Each distinct condition of an ONNX export that "depends", once."""
    return list(dict.fromkeys(e["onnx_export"] for e in entries if e["onnx_export"].startswith("depends")))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def methods_table(fmt: str = "text") -> str:
    """Every registered detector: method, needs, ONNX export, presets, paper; ``fmt`` one of
    :data:`FORMATS` (JSON: the whole :func:`catalogue`)."""
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    entries = catalogue()
    if fmt == "json":
        return json.dumps(entries, indent=2, ensure_ascii=False)
    rows, notes = _rows(entries), [f"ONNX {n}" for n in _export_notes(entries)]
    notes.append("ONNX export needs a model that scores in float32 (the default precision), fitted on images.")
    if fmt == "markdown":
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        return "\n".join(lines + [""] + notes)
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths)), row[-1]]) for row in [HEADER, *rows]]
    return "\n".join(lines + [""] + notes)


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _preset_values(s: dict[str, Any]) -> str:
    return ", ".join(f"{p}: {_value(v)}" for p, v in s["presets"].items())


def describe(method: str, fmt: str = "text") -> str:
    """``method``'s paper, needs, ONNX export, presets and every setting (default, per-preset values,
    description); ``fmt`` one of :data:`FORMATS`.

    Raises:
        InputError: unknown method (naming the close matches) or format.
    """
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    e = entry(method)
    if fmt == "json":
        return json.dumps(e, indent=2, ensure_ascii=False)
    facts = [("paper", e["paper"] or "-"), ("needs", e["requires"]),
             ("a model of yours", "may stand in (ModelAdapter; oodscope fit --model)" if e["user_models"] else "no")]
    if e["package"]:
        facts.append(("package", e["package"] + (f" (pip install 'oodscope[{e['extra']}]')" if e["extra"] else "")))
    only = "" if e["onnx_export"] == "no" else "; only a model that scores in float32 (the default precision)"
    facts += [("ONNX export", e["onnx_export"] + only), ("presets", _presets_line(e))]
    if fmt == "markdown":
        lines = [f"### {e['method']}", ""] + [f"- **{k}**: {_cell(v)}" for k, v in facts] + [""]
        lines += ["| setting | default | presets | description |", "|---|---|---|---|"]
        lines += [f"| `{s['name']}` | `{_cell(_value(s['default']))}` | {_cell(_preset_values(s))} | {_cell(s['help'])} |"
                  for s in e["settings"]]
        return "\n".join(lines)
    lines = [f"{e['method']}"] + [f"  {k}: {v}" for k, v in facts]
    lines.append("settings (name = default; values under presets; description):" if e["settings"] else "settings: none")
    for s in e["settings"]:
        per = _preset_values(s)
        lines.append(f"  {s['name']} = {_value(s['default'])}" + (f"    [{per}]" if per else ""))
        lines.append(f"      {s['help']}")
    return "\n".join(lines)
