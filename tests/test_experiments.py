"""The experiment abstraction: a toy experiment registered from this one file runs through the one
run loop, resumes, refuses options it does not declare, redraws its table and is reported; the
registry and the recognition of directories written before ``experiment.json``; the one record file
``experiment.json`` and its sections, read from the older files of directories written before."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from oodscope.bench.config import RunOptions
from oodscope.bench.experiment import (Experiment, Outcome, ReportTables, experiment_of, experiments, register_experiment,
                                       rows_of)
from oodscope.bench.loop import Finished, Hooks, run_cells
from oodscope.cli import cli
from oodscope.errors import DataError, InputError
from oodscope.protocols import OneClass
from oodscope.results import RECORD_SCHEMA, SCHEMA_VERSION, Table, locate_section, read_section, write_section

RUNS: list[str] = []  # the cells the toy ran, across invocations


@register_experiment
class Toy(Experiment):
    """Per seed, a "detector" whose scores are the OOD label plus seeded noise of scale 1/(seed+1)."""

    kind = "toy"
    suites = ("toy",)
    takes = frozenset({"seeds"})
    refusal = "the toy has its own detector"
    executors = ("local",)

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        protocol = OneClass("digits", oe_dataset="digits")
        seeds = [int(s) for s in (self.options["seeds"] or "0").split(",")]
        cells = [protocol.cell("toy", 0, s, "smoke", 0, "all") for s in seeds]

        def execute(pending: list[Any]):
            for cell in pending:
                RUNS.append(cell.key())
                rng = np.random.default_rng(cell.seed)
                is_ood = np.arange(40) % 2 == 1
                scores = is_ood + rng.normal(0, 1 / (cell.seed + 1), 40)
                auroc = 100 * float(np.mean(scores[is_ood][:, None] > scores[~is_ood][None, :]))
                row = {"schema": SCHEMA_VERSION, **cell.row_fields(), "metrics": {"auroc": auroc}, "settings": {}}
                yield Finished(cell, row, (scores, is_ood, np.zeros(40, dtype=np.int64)))

        run_cells(out, cells, execute, Hooks(announce=lambda pending, cells, rows: f"toy: {len(pending)} to run"),
                  show_progress=False)
        return self.rebuild(out, rows_of(out))

    @classmethod
    def table(cls, rows: list[dict[str, Any]]) -> Table:
        return Table(["seed", "AUROC"], [[str(r["seed"]), f"{r['metrics']['auroc']:.1f}"] for r in rows], caption="toy")

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        text = cls.table(rows).markdown()
        (directory / "toy.md").write_text(text)
        return Outcome(text, [directory / "toy.md"])

    @classmethod
    def report(cls, directory: Path, rows: list[dict[str, Any]]) -> ReportTables | None:
        return ReportTables("Toy experiment", ["noise shrinks with the seed"], [("AUROC per seed", cls.table(rows))])


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_toy_experiment_runs_resumes_redraws_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    RUNS.clear()
    r = invoke("bench", "--suite", "toy", "--seeds", "0,3", "--out", str(out))
    assert r.exit_code == 0, r.output
    rows = rows_of(out)
    assert [row["seed"] for row in rows] == [0, 3] and len(RUNS) == 2
    assert rows[1]["metrics"]["auroc"] > rows[0]["metrics"]["auroc"]  # less noise, better separated
    assert all((out / row["scores_file"]).is_file() for row in rows)
    record = json.loads((out / "experiment.json").read_text())
    assert (record["kind"], record["suite"], record["options"]) == ("toy", "toy", {"seeds": "0,3"})
    assert experiment_of(out) == (Toy, "toy")
    log = (out / "results.jsonl").read_bytes()
    again = invoke("bench", "--suite", "toy", "--seeds", "0,3", "--out", str(out))  # resumes: nothing to run
    assert again.exit_code == 0 and "toy: 0 to run" in again.output and len(RUNS) == 2
    assert (out / "results.jsonl").read_bytes() == log
    assert json.loads((out / "experiment.json").read_text())["history"][0]["command"] == record["command"]
    more = invoke("bench", "--suite", "toy", "--seeds", "0,1,3", "--out", str(out))  # one more seed: one more cell
    assert more.exit_code == 0 and len(RUNS) == 3 and len(rows_of(out)) == 3
    (out / "toy.md").write_text("stale")
    redraw = invoke("bench", "--tables-only", "--out", str(out))
    assert redraw.exit_code == 0, redraw.output
    assert (out / "toy.md").read_text().count("|") > 9 and "wrote:" in redraw.output
    refused = invoke("bench", "--suite", "toy", "--methods", "geom", "--out", str(out))
    assert refused.exit_code == 2 and "--suite toy does not take --methods (the toy has its own detector)" in refused.output
    report = invoke("report", str(out))
    assert report.exit_code == 0, report.output
    page = (out / "report.html").read_text()
    assert "Toy experiment" in page and "AUROC per seed" in page and "noise shrinks with the seed" in page


def test_a_directory_of_another_experiment_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    assert invoke("bench", "--suite", "toy", "--out", str(out)).exit_code == 0
    r = invoke("bench", "--suite", "table3", "--dataset", "digits", "--out", str(out))
    assert r.exit_code == 2 and "holds suite toy" in r.output
    assert invoke("bench", "--tables-only", "--suite", "stress", "--out", str(out)).exit_code == 2


def test_registry_and_record_recognition(tmp_path: Path) -> None:
    known = experiments()
    assert {"grid", "paper-suite", "family-suite", "robustness", "verification", "stress", "toy"} <= set(known)
    suites = [s for cls in known.values() for s in cls.suites]
    assert len(suites) == len(set(suites)), "every --suite name belongs to one experiment"
    with pytest.raises(ValueError, match="already"):
        register_experiment(type("Clash", (Experiment,), {"kind": "clash", "suites": ("toy",)}))
    # directories from before experiment.json, by the record files they hold
    for files, expected in (({"suite.json": {"suite": "fig4"}, "run.json": {}}, ("paper-suite", "fig4")),
                            ({"robustness.json": {"suite": "robustness"}}, ("robustness", "robustness")),
                            ({"verification.json": {}}, ("verification", "verification")),
                            ({"run.json": {"command": ["oodscope", "bench", "--suite", "calibration"]}},
                             ("family-suite", "calibration")),
                            ({"run.json": {"command": ["oodscope", "bench"]}}, ("grid", None))):
        d = tmp_path / f"legacy-{expected[0]}-{expected[1]}"
        d.mkdir()
        (d / "results.jsonl").write_text("")
        for name, content in files.items():
            (d / name).write_text(json.dumps(content))
        cls, suite = experiment_of(d)
        assert (cls.kind, suite) == expected
    # today's directories whose experiment.json names no experiment (sections only: a grid run from Python,
    # a run killed before its end), by the sections it holds
    for sections, expected in (({"paper_suite": {"suite": "fig4"}, "grid": {}}, ("paper-suite", "fig4")),
                               ({"measured": {"suite": "verification"}}, ("verification", "verification")),
                               ({"grid": {"command": ["oodscope", "bench", "--suite", "classifier"]}},
                                ("family-suite", "classifier")),
                               ({"grid": {"command": ["oodscope", "bench"]}}, ("grid", None))):
        d = tmp_path / f"record-{expected[0]}-{expected[1]}"
        d.mkdir()
        (d / "results.jsonl").write_text("")
        (d / "run.json").write_text(json.dumps({"command": ["oodscope", "bench", "--suite", "calibration"]}))  # stale
        (d / "experiment.json").write_text(json.dumps({"schema": 2, **sections}))
        cls, suite = experiment_of(d)
        assert (cls.kind, suite) == expected
    stress = tmp_path / "stress"
    (stress / "mnist--digits-28").mkdir(parents=True)
    (stress / "mnist--digits-28" / "results.jsonl").write_text("")
    assert experiment_of(stress)[0].kind == "stress"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no results"):
        experiment_of(tmp_path / "empty")
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "experiment.json").write_text(json.dumps({"kind": "grid", "schema": 99}))
    with pytest.raises(Exception, match="newer"):
        experiment_of(tmp_path / "future")


def test_the_loop_resumes_after_an_interrupted_cell(tmp_path: Path) -> None:
    protocol = OneClass("digits", oe_dataset="digits")
    cells = [protocol.cell("toy", 0, s, "smoke", 0, "all") for s in range(3)]
    ran: list[int] = []

    def execute(pending):
        for cell in pending:
            if cell.seed == 1 and not ran.count(-1):
                ran.append(-1)
                raise KeyboardInterrupt  # stopped in the middle of the second cell
            ran.append(cell.seed)
            yield Finished(cell, {"schema": SCHEMA_VERSION, **cell.row_fields(), "metrics": {"auroc": 50.0}})

    with pytest.raises(KeyboardInterrupt):
        run_cells(tmp_path, cells, execute, show_progress=False)
    assert [r["seed"] for r in rows_of(tmp_path)] == [0]
    rows = run_cells(tmp_path, cells, execute, show_progress=False)
    assert [r["seed"] for r in rows] == [0, 1, 2] and ran == [0, -1, 1, 2]


def test_record_sections_are_read_from_experiment_json_else_from_their_older_file(tmp_path: Path) -> None:
    """One reader per section: experiment.json first, the file a directory written before kept it in
    otherwise; writing a section keeps the header and the other sections, atomically."""
    (tmp_path / "run.json").write_text(json.dumps({"command": ["old"], "config": {"preset": "cpu"}}))
    (tmp_path / "robustness.json").write_text(json.dumps({"plan": {"preset": "smoke"}}))
    assert locate_section(tmp_path, "grid") == ("run.json", {"command": ["old"], "config": {"preset": "cpu"}})
    assert read_section(tmp_path, "measured") == {"plan": {"preset": "smoke"}}
    assert read_section(tmp_path, "paper_suite") is None
    (tmp_path / "experiment.json").write_text(json.dumps({"kind": "grid", "suite": None, "schema": 1, "options": {}}))
    assert read_section(tmp_path, "grid")["command"] == ["old"]  # a header of schema 1: sections in their files
    write_section(tmp_path, "grid", {"command": ["new"], "config": {"preset": "smoke"}})
    write_section(tmp_path, "measured", {"suite": "robustness", "plan": {}})
    record = json.loads((tmp_path / "experiment.json").read_text())
    assert list(record) == ["kind", "suite", "schema", "options", "grid", "measured"]  # the header first
    assert record["schema"] == RECORD_SCHEMA == 2 and record["kind"] == "grid"
    assert locate_section(tmp_path, "grid") == ("experiment.json", {"command": ["new"], "config": {"preset": "smoke"}})
    assert read_section(tmp_path, "measured")["suite"] == "robustness"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.json", "robustness.json", "run.json"]  # no temp
    (tmp_path / "experiment.json").write_text(json.dumps({"schema": 3, "grid": {}}))
    with pytest.raises(DataError, match="schema 3 is newer"):
        read_section(tmp_path, "grid")
    with pytest.raises(DataError, match="schema 3 is newer"):  # and not overwritten
        write_section(tmp_path, "grid", {})
    assert json.loads((tmp_path / "experiment.json").read_text()) == {"schema": 3, "grid": {}}


def test_the_grid_record_keeps_a_model_of_yours(tmp_path: Path) -> None:
    """``BenchConfig.to_json`` carries the user model's spec under ``model``; the grid section keeps it."""
    from oodscope.bench.config import BenchConfig
    from oodscope.bench.runner import record_run

    model = SimpleNamespace(to_json=lambda: {"path": "net.onnx", "penultimate": "fc1"})
    record_run(BenchConfig(out=tmp_path, methods=["msp"], model=model), 3, 0)  # type: ignore[arg-type]
    grid = read_section(tmp_path, "grid")
    assert grid["config"]["model"] == {"path": "net.onnx", "penultimate": "fc1"} and grid["cells"] == 3
    assert sorted(os.listdir(tmp_path)) == ["experiment.json"]


def test_a_fresh_grid_directory_holds_one_record_file_and_reads_reports_and_merges(tmp_path: Path) -> None:
    """A grid written today: experiment.json is its only record file (the experiment, then the grid's
    section), beside results.jsonl, summary.md and scores/; it resumes, redraws, reports and merges."""
    out = tmp_path / "grid"
    args = ["bench", "--dataset", "digits", "--oe", "digits", "--classes", "0", "--methods", "geom", "--n-oe", "2",
            "--preset", "smoke", "--set", "epochs=1", "--set", "batch_size=64", "--threads", "1", "--no-progress",
            "--out", str(out)]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["experiment.json", "results.jsonl", "scores", "summary.md"]
    record = json.loads((out / "experiment.json").read_text())
    assert list(record) == ["kind", "suite", "schema", "options", "command", "started", "history", "grid"]
    assert (record["kind"], record["suite"], record["schema"]) == ("grid", None, 2)
    grid = record["grid"]
    assert grid["config"]["methods"] == ["geom"] and grid["settings"]["geom"]["epochs"] == 1
    assert grid["command"] == record["command"] and (grid["cells"], grid["finished_at_start"]) == (1, 0)
    again = invoke(*args)  # resumes: nothing to run; both histories keep the first command
    assert again.exit_code == 0 and "already finished" in again.output
    record = json.loads((out / "experiment.json").read_text())
    assert record["history"][0]["command"] == record["grid"]["history"][0]["command"] == grid["command"]
    assert record["grid"]["finished_at_start"] == 1
    assert invoke("bench", "--tables-only", "--out", str(out)).exit_code == 0
    assert experiment_of(out)[0].kind == "grid"
    report = invoke("report", str(out))
    assert report.exit_code == 0, report.output
    page = (out / "report.html").read_text()
    assert "Configuration (experiment.json: grid)" in page and "roc_digits.png" in page
    merged = tmp_path / "merged"
    assert invoke("merge", str(out), "--into", str(merged)).exit_code == 0
    assert sorted(p.name for p in merged.glob("*.json")) == ["experiment.json", "merges.json"]
    commands = json.loads((merged / "merges.json").read_text())["merges"][0]["commands"]
    assert {c["file"] for c in commands} == {"experiment.json", "experiment.json: grid"}
    assert experiment_of(merged)[0].kind == "grid"
    refused = invoke("bench", "--suite", "toy", "--out", str(out))
    assert refused.exit_code == 2 and "holds grid results" in refused.output
