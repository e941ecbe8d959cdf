"""``oodscope methods`` (every detector, as text, Markdown or JSON) and ``oodscope describe METHOD``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from oodscope.cli import cli
from oodscope.detectors import registry


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_methods_lists_every_detector_alike_in_text_markdown_and_json() -> None:
    text, markdown, js = (invoke("methods", *fmt) for fmt in ([], ["--format", "markdown"], ["--format", "json"]))
    assert text.exit_code == markdown.exit_code == js.exit_code == 0, text.output + markdown.output + js.output
    entries = json.loads(js.output)
    assert [e["method"] for e in entries] == list(registry())
    text_rows = {line.split()[0]: line for line in text.output.splitlines()[1:len(entries) + 1]}
    md_rows = {line.split("|")[1].strip(): line for line in markdown.output.splitlines()[2:len(entries) + 2]}
    assert list(text_rows) == list(md_rows) == list(registry())
    for e in entries:
        cls = registry()[e["method"]]
        assert e["paper"] == cls.paper and e["onnx_export"] == cls.onnx_export() and e["needs"] == cls.requires.needs()
        assert [s["name"] for s in e["settings"]] == list(cls.defaults)
        for row in (text_rows[e["method"]], md_rows[e["method"]]):
            assert e["paper"] in row and e["onnx_export"].split(":")[0] in row and e["needs"][0] in row
        if cls.requires.labels:
            assert "labels" in text_rows[e["method"]]


def test_describe_layers_shows_every_setting_with_its_default_and_description() -> None:
    result = invoke("describe", "layers")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    cls = registry()["layers"]
    assert cls.paper in result.output and f"ONNX export: {cls.onnx_export()}" in result.output
    for key, text in cls.settings_help().items():
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key} = "))
        assert lines[at].strip().startswith(f"{key} = {json.dumps(cls.defaults[key])}"), lines[at]
        assert lines[at + 1].strip() == text
    assert '[paper: ["z1", "z2", "z3", "z4"]]' in result.output  # per-preset values
    entry = json.loads(invoke("describe", "layers", "--format", "json").output)
    assert {s["name"]: s["help"] for s in entry["settings"]} == cls.settings_help()


def test_an_unknown_method_is_one_line_naming_close_matches() -> None:
    result = invoke("describe", "layer")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: unknown method 'layer'; did you mean layers, layers-clf? ('oodscope methods' lists every method)"]
    assert "known: geom, " in invoke("describe", "no-such-thing").stderr
