"""Tests of ``oodscope report``: the HTML page, its inputs, errors, the CLI and a headless
Chromium render check (the page loads with its embedded figures, no network needed)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import oodscope
from conftest import run_chromium
from oodscope.cli import cli
from oodscope.errors import DataError, InputError, OodscopeError
from oodscope.report import read_dir, write_report
from oodscope.report.sections import figure_caption

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v1"

MAGENTA = (255, 0, 255)


def _row(method: str, cls: int, auroc: float, seed: int = 0, **extra) -> dict:
    """A results row as oodscope wrote them before the schema was versioned (schema 1)."""
    return {
        "dataset": "mnist", "method": method, "taps_variant": None, "id_class": cls, "n_oe": 16,
        "oe_classes": "all", "oe_dataset": "emnist-letters", "seed": seed, "preset": "cpu",
        "auroc": auroc, "aupr_in": auroc - 10, "aupr_out": 99.0, "fpr95": 100 - auroc,
        "fit_seconds": 2.5, "score_seconds": 0.5, "settings": {"epochs": 6, "seed": seed, "width": 4},
        "timestamp": "2026-01-01T00:00:00+00:00", **extra,
    }


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    Image.new("RGB", size, color).save(path)


NOTES_MD = """\
# What we tried

The layers <script>alert(1)</script> run used 16 outliers.
"""

SUMMARY_MD = """\
# oodscope benchmark summary

Finished cells: 4 of 4.

## mnist, preset cpu

| class | geom | layers |
|---|---:|---:|
| 0 | 80.00 | 97.00 |
| mean | 85.00 | 98.00 |
"""


def _record(d: Path, layout: str, section: str, content: dict) -> None:
    """Write a record section as a directory of ``layout`` holds it: in experiment.json (today), or
    in its own file (``run.json``, ``suite.json``: a directory written before)."""
    if layout == "experiment.json":
        (d / "experiment.json").write_text(json.dumps({"schema": 2, section: content}))
    else:
        (d / layout).write_text(json.dumps(content))


@pytest.fixture(params=["experiment.json", "run.json"])
def bench_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A hand-made benchmark directory: 5 rows (one a repeated cell) plus a partial last line,
    a summary.md (which the report does not repeat: it renders the rows), notes.md, the grid's record
    with a history (in experiment.json, or in run.json as a directory written before holds it), and
    two PNG figures."""
    d = tmp_path / "mnist-cpu"
    d.mkdir()
    rows = [_row("geom", 0, 80.0), _row("layers", 0, 97.0), _row("geom", 1, 90.0), _row("layers", 1, 99.0),
            _row("geom", 0, 10.0)]  # a repeated cell: the first row counts
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"dataset": "mnist", "meth'
    (d / "results.jsonl").write_text(text)
    (d / "notes.md").write_text(NOTES_MD)
    (d / "summary.md").write_text(SUMMARY_MD)
    _record(d, request.param, "grid", {
        "command": ["oodscope", "bench", "--out", "runs/x y"], "started": "2026-01-02T00:00:00+00:00",
        "config": {"dataset": "mnist", "preset": "cpu", "command": ["ignored"]},
        "history": [{"command": ["oodscope", "bench", "--first"], "started": "2026-01-01T00:00:00+00:00"}],
    })
    _png(d / "fig4.png", (240, 120), MAGENTA)
    _png(d / "roc_layers_class1.png", (40, 30), (0, 128, 0))
    return d


class PageParser(HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def parse(path: Path) -> PageParser:
    p = PageParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    return p


def test_report_has_tables_figures_and_provenance(bench_dir: Path) -> None:
    out = write_report([bench_dir])
    assert out == bench_dir / "report.html"
    page = parse(out)
    text = " ".join(page.text)
    # results 2 (AUROC by class, metrics), run.json config 1, settings 1: each table once
    assert page.count("table") == 4
    assert page.count("details") == 2  # how it was produced, notes: folded
    images = page.attrs("img")
    assert len(images) == 2
    sizes = set()
    for img in images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        im.load()
        assert im.format == "PNG"
        sizes.add(im.size)
    assert sizes == {(240, 120), (40, 30)}
    for _, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value), value
    assert page.count("script") == 0 and page.count("link") == 0
    assert "<script>alert(1)</script>" in text  # escaped text from notes.md, not a tag
    assert "Figure 4 (fig4.png)" in text and "ROC curves: layers class 1 (roc_layers_class1.png)" in text
    assert "oodscope bench --out 'runs/x y'" in text and "oodscope bench --first" in text
    where = "experiment.json: grid" if (bench_dir / "experiment.json").exists() else "run.json"
    assert f"Configuration ({where})" in text and f"{where}, started 2026-01-01" in text
    html = out.read_text()
    assert html.index("AUROC (%) per in-distribution class") < html.index("<img") < html.index("How it was produced")
    assert f"oodscope {oodscope.__version__}" in text and "Generated 20" in text
    assert "left out" in text  # the partial last line is mentioned
    # results table: class 0 geom is 80.00 (the repeated cell's second row ignored), mean 85.00
    assert "80.00" in text and "85.00" in text and "10.00" not in text


def test_results_table_values(bench_dir: Path) -> None:
    d = read_dir(bench_dir)
    assert len(d.rows) == 5 and d.partial_last_line
    html = write_report([bench_dir]).read_text()
    auroc = html[html.index("AUROC (%) per in-distribution class"):]
    auroc = auroc[: auroc.index("</table>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", auroc)
    assert cells == ["0", "80.00", "97.00", "1", "90.00", "99.00", "mean", "85.00", "98.00"]
    metrics = html[html.index("mean over cells; seconds per cell"):]
    metrics = re.findall(r"<td[^>]*>([^<]*)</td>", metrics[: metrics.index("</table>")])
    assert metrics[:10] == ["geom", "2", "1", "85.00", "75.00", "99.00", "15.00", "2.5", "0.5", "layers"]


def test_atomic_write_leaves_no_temp_file(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(os.listdir(bench_dir))
    write_report([bench_dir])
    assert set(os.listdir(bench_dir)) == before | {"report.html"}
    old = (bench_dir / "report.html").read_bytes()

    def broken_replace(*args, **kwargs):
        raise OSError("simulated failure")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        write_report([bench_dir])
    assert set(os.listdir(bench_dir)) == before | {"report.html"}
    assert (bench_dir / "report.html").read_bytes() == old


def test_several_directories_need_out(bench_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "only-figures"
    other.mkdir()
    _png(other / "fig5.png", (20, 20), (10, 20, 30))
    with pytest.raises(InputError, match="--out"):
        write_report([bench_dir, other])
    out = write_report([bench_dir, other], tmp_path / "sub" / "both.html")
    page = parse(out)
    assert page.count("section") == 2 and len(page.attrs("img")) == 3
    assert [a["href"] for a in page.attrs("a")] == ["#dir1", "#dir2"]


@pytest.mark.parametrize("setup, fragment", [
    (lambda d: None, "nothing to report"),
    (lambda d: (d / "results.jsonl").write_text(""), "nothing to report"),
    (lambda d: (d / "run.json").write_text("{}"), "nothing to report"),
    (lambda d: (d / "results.jsonl").write_text('{"a": 1\n{"method": "geom"}\n'), "results.jsonl, line 1"),
    (lambda d: (d / "results.jsonl").write_text('[1, 2]\n'), "expected a JSON object"),
    (lambda d: (d / "summary.md").write_text("tables oodscope wrote are rendered from the results"), "nothing to report"),
    (lambda d: (d / "notes.md").write_bytes(b"| a |\n\xff\xfe"), "notes.md: not UTF-8"),
    (lambda d: ((d / "notes.md").write_text("x"), (d / "run.json").write_text("{oops")), "run.json: not valid JSON"),
    (lambda d: (d / "fig4.png").write_bytes(b"GIF89a"), "fig4.png: not a PNG"),
    (lambda d: ((d / "notes.md").write_text("x"), (d / "suite.json").mkdir()), "suite.json: cannot read"),
    (lambda d: ((d / "notes.md").write_text("x"), (d / "experiment.json").write_text("{oops")),
     "experiment.json: not valid JSON"),
    (lambda d: ((d / "notes.md").write_text("x"), (d / "experiment.json").write_text('{"grid": [1]}')),
     "experiment.json: section 'grid' is not a JSON object"),
    (lambda d: ((d / "notes.md").write_text("x"), (d / "experiment.json").write_text('{"schema": 7}')),
     "experiment.json: schema 7 is newer"),
    (lambda d: ((d / "notes.md").write_text("x"), (d / "merges.json").write_text('{"merges": [1]}')),
     "merges.json: not a merges record"),
    (lambda d: (d / "results.jsonl").write_text('{"schema": 9, "method": "geom"}\n'), "line 1: results row of unknown schema"),
])
def test_errors_name_the_directory_or_file(tmp_path: Path, setup, fragment: str) -> None:
    d = tmp_path / "run"
    d.mkdir()
    setup(d)
    with pytest.raises(OodscopeError, match=re.escape(fragment)) as info:
        write_report([d])
    assert str(d) in str(info.value)
    assert not (d / "report.html").exists()


def test_missing_directory_and_bad_out(tmp_path: Path, bench_dir: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        write_report([tmp_path / "absent"])
    with pytest.raises(InputError, match="no benchmark directory"):
        write_report([])
    with pytest.raises(InputError, match="is a directory"):
        write_report([bench_dir], out=tmp_path)
    assert issubclass(DataError, OodscopeError)


@pytest.mark.parametrize("layout", ["experiment.json", "suite.json"])
def test_csv_table_used_without_markdown_twin(tmp_path: Path, layout: str) -> None:
    d = tmp_path / "suite"
    d.mkdir()
    (d / "table.csv").write_text("method,ours,paper\ngeom,94.6,98.1\n")
    _record(d, layout, "paper_suite", {
        "suite": "table2", "command": ["oodscope", "bench", "--suite", "table2"], "spec": {"seeds": [0, 1]},
        "history": [{"command": ["oodscope", "bench", "--suite", "table2", "--first"]}]})
    page = parse(write_report([d]))
    text = " ".join(page.text)
    assert page.count("table") == 2 and "98.1" in text and "[0,1]" in text
    assert "oodscope bench --suite table2 --first" in text and "oodscope bench --suite table2" in text


def test_report_on_a_plain_bench_directory_draws_roc_and_histograms(tmp_path: Path) -> None:
    """`oodscope bench` without a suite writes no figures; the report draws them from the saved
    scores (without writing into the directory) and embeds them."""
    out = tmp_path / "grid"
    r = CliRunner().invoke(cli, ["bench", "--dataset", "digits", "--oe", "digits", "--classes", "0,1", "--methods",
                                 "geom,layers", "--n-oe", "4", "--preset", "smoke", "--set", "batch_size=64",
                                 "--no-progress", "--threads", "1", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert not list(out.glob("*.png"))
    before = sorted(p.name for p in out.iterdir())
    page = parse(write_report([out]))
    text = " ".join(page.text)
    assert "ROC curves: digits (roc_digits.png) (drawn for this report" in text
    assert "Score histograms: digits (hist_digits.png) (drawn for this report" in text
    sizes = [Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1]))).size for a in page.attrs("img")]
    assert len(sizes) == 2 and all(w > 300 and h > 200 for w, h in sizes)
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "report.html"])  # nothing else written


def test_report_of_directories_written_before_the_schema(tmp_path: Path) -> None:
    """Run directories written by the earlier oodscope (tests/fixtures/v1: a grid with taps variants,
    a fig4 suite merged from two parts) still report: their tables, the sweep figure and the
    curves drawn from their scores, their commands and merges."""
    out = write_report([FIXTURES / "grid", FIXTURES / "suite"], tmp_path / "old.html")
    page = parse(out)
    text = " ".join(page.text)
    assert "layers[z3+z4+ptrue]" in text and "Fig. 4: AUROC vs number of known outliers" in text
    assert "Figure 4 (fig4.png) (drawn for this report" in text
    assert text.count("ROC curves: digits (roc_digits.png)") == 2
    assert "14 cells merged from" in text
    suite_rows = read_dir(FIXTURES / "suite").rows
    assert len(suite_rows) == 28 and all(r["schema"] == 2 and r["protocol"] == "one-class" for r in suite_rows)


def test_import_report_loads_no_torch() -> None:
    code = ("import sys, oodscope.report, oodscope.results, oodscope.figures, oodscope.bench.merge, "
            "oodscope.bench.paper.tables; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_figure_captions() -> None:
    assert figure_caption("fig3_class2.png") == "Figure 3, class 2 (fig3_class2.png)"
    assert figure_caption("hist_geom.png") == "Score histograms: geom (hist_geom.png)"
    assert figure_caption("other_plot.png") == "other plot (other_plot.png)"


def test_cli_report(bench_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(bench_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (bench_dir / "report.html").is_file() and "report.html" in result.output
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(bench_dir), str(bench_dir), "--out", str(out)])
    assert result.exit_code == 0 and out.is_file()


@pytest.mark.parametrize("args, fragment", [
    (["absent-dir"], "absent-dir: no such directory"),
    (["a", "b"], "--out"),
])
def test_cli_report_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = CliRunner().invoke(cli, ["report", *(str(tmp_path / a) for a in args)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


# --- headless Chromium render check -------------------------------------------------------

def test_chromium_renders_embedded_figure(chromium: str, tmp_path: Path) -> None:
    """Screenshot of a small report: the magenta PNG embedded in it must show up as pixels."""
    d = tmp_path / "render"
    d.mkdir()
    (d / "results.jsonl").write_text(json.dumps(_row("geom", 0, 90.0)) + "\n")
    _png(d / "fig4.png", (300, 150), MAGENTA)
    report = write_report([d])
    shot = tmp_path / "shot.png"
    proc = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000",
                         report.resolve().as_uri())
    assert shot.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    magenta = int(((rgb[..., 0] > 235) & (rgb[..., 1] < 20) & (rgb[..., 2] > 235)).sum())
    assert magenta >= 0.9 * 300 * 150, f"only {magenta} magenta pixels in the screenshot"


def test_chromium_loads_every_image(chromium: str, bench_dir: Path, tmp_path: Path) -> None:
    """Render check via --dump-dom: a copy of the report gets a tiny inline script (the report
    itself has none) that records how many <img> decoded (naturalWidth > 0) on the body."""
    html = write_report([bench_dir]).read_text(encoding="utf-8")
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             "document.body.setAttribute('data-total', imgs.length);"
             "document.body.setAttribute('data-loaded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);"
             "});</script></body>")
    copy = tmp_path / "probe.html"
    copy.write_text(html.replace("</body>", probe), encoding="utf-8")
    proc = run_chromium(chromium, tmp_path / "profile", "--dump-dom", "--virtual-time-budget=3000", copy.as_uri())
    m = re.search(r'<body[^>]*data-total="(\d+)"[^>]*data-loaded="(\d+)"', proc.stdout)
    assert m, f"no probe attributes in the DOM (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert m.group(1) == "2" and m.group(2) == "2"
