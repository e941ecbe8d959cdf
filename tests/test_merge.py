"""Tests of merging benchmark directories: a suite split by class, run for real, then merged."""

from __future__ import annotations

import html
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from helpers import one_class_cell, result_row

from oodscope.bench import make_spec
from oodscope.bench.lock import directory_lock
from oodscope.bench.merge import merge_runs
from oodscope.cli import cli
from oodscope.errors import DataError, InputError
from oodscope.results import ResultsLog, field, load_scores, row_key, save_scores

torch.set_num_threads(1)

SMOKE = ["--preset", "smoke", "--set", "progress=false", "--set", "batch_size=64", "--threads", "1", "--no-progress"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows_of(directory: Path) -> list[dict]:
    return ResultsLog(directory / "results.jsonl").rows()


def fake_dir(directory: Path, classes: list[int], settings: dict | None = None, method: str = "layers") -> list[dict]:
    """A benchmark directory written by hand: one row and one scores file per class."""
    directory.mkdir(parents=True, exist_ok=True)
    log = ResultsLog(directory / "results.jsonl")
    rows = []
    rng = np.random.default_rng(len(classes))
    for c in classes:
        cell = one_class_cell(method, c)
        is_ood = np.arange(20) % 2 == 1
        row = {**result_row(cell, auroc=90.0 + c, aupr_in=80.0, aupr_out=85.0, fpr95=30.0),
               "fit_seconds": 1.0, "score_seconds": 0.1, "settings": {"epochs": 1, "seed": 0, **(settings or {})},
               "scores_file": save_scores(directory, cell.row_fields(), rng.normal(size=20), is_ood,
                                          is_ood.astype(np.int64))}
        log.append(row)
        rows.append(row)
    return rows


def test_merge_copies_rows_and_scores_once(tmp_path: Path) -> None:
    a, b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "dest"
    rows_a = fake_dir(a, [0, 1])
    rows_b = fake_dir(b, [1, 2])  # class 1 in both: the first source's row wins
    report = merge_runs([a, b], dest)
    assert report.added == {str(a): 2, str(b): 1} and report.skipped == {str(a): 0, str(b): 1}
    merged = rows_of(dest)
    assert [field(r, "id_class") for r in merged] == [0, 1, 2]
    assert [r["merged_from"] for r in merged] == [str(a.resolve())] * 2 + [str(b.resolve())]
    for got, want, src in zip(merged, [rows_a[0], rows_a[1], rows_b[1]], [a, a, b]):
        assert {k: v for k, v in got.items() if k != "merged_from"} == want
        mine, theirs = load_scores(dest, got), load_scores(src, want)
        assert all(np.array_equal(mine[k], theirs[k]) for k in ("scores", "is_ood", "labels"))
    assert "90.00" in (dest / "summary.md").read_text()
    before = (dest / "results.jsonl").read_bytes()
    again = merge_runs([a, b], dest)  # nothing new: nothing written
    assert again.total_added == 0 and (dest / "results.jsonl").read_bytes() == before
    assert not list(dest.rglob("*.tmp"))


def test_merge_refuses_and_writes_nothing(tmp_path: Path) -> None:
    a, b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "dest"
    fake_dir(dest, [0])
    fake_dir(a, [1])
    fake_dir(b, [2], settings={"epochs": 3})
    before = (dest / "results.jsonl").read_bytes()
    with pytest.raises(InputError, match=r"different settings \(epochs\)"):
        merge_runs([a, b], dest)  # a alone would be fine: nothing of it is written either
    assert (dest / "results.jsonl").read_bytes() == before and len(list((dest / "scores").iterdir())) == 1
    with pytest.raises(InputError, match="no results.jsonl"):
        merge_runs([tmp_path / "missing"], dest)
    with pytest.raises(InputError, match="destination itself"):
        merge_runs([dest], dest)
    with directory_lock(a), pytest.raises(InputError, match="another benchmark is running"):
        merge_runs([a], dest)
    (dest / "merges.json").write_text("[]")
    with pytest.raises(DataError, match="not a merges record"):
        merge_runs([a], dest)
    (dest / "merges.json").unlink()
    damaged = next((a / "scores").iterdir())
    damaged.write_bytes(damaged.read_bytes()[:30])
    with pytest.raises(DataError, match="not a valid scores file"):
        merge_runs([a], dest)
    assert (dest / "results.jsonl").read_bytes() == before


def test_merge_refuses_another_suite(tmp_path: Path) -> None:
    a, dest = tmp_path / "a", tmp_path / "dest"
    fake_dir(a, [1])
    fake_dir(dest, [0])
    for d, suite in ((a, "fig5"), (dest, "fig4")):
        spec = make_spec(suite, "digits", "smoke", 10, oe_dataset="digits", unsupervised=["geom"])
        info = {"suite": suite, "dataset": "digits", "preset": "smoke", "spec": spec.to_json()}
        (d / "suite.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="holds suite fig5"):
        merge_runs([a], dest)


def test_suite_split_by_class_then_merged(tmp_path: Path) -> None:
    """A real fig4 run split over two directories, merged, equals what one run would finish."""
    common = ["bench", "--suite", "fig4", "--dataset", "digits", "--oe", "digits", "--n-oe", "4",
              "--seeds", "0", "--methods", "geom,layers", *SMOKE]
    parts = []
    for classes in ("0", "8"):
        out = tmp_path / f"part{classes}"
        r = invoke(*common, "--classes", classes, "--out", str(out))
        assert r.exit_code == 0, r.output
        parts.append(out)
    dest = tmp_path / "all"
    r = invoke("merge", *map(str, parts), "--into", str(dest))
    assert r.exit_code == 0, r.output
    assert "merged 4 cells" in r.output
    r = invoke(*common, "--classes", "0,8", "--out", str(dest))  # the whole suite: nothing left to run
    assert r.exit_code == 0, r.output
    assert "all 4 cells already finished" in r.output
    merged = {row_key(x): x for x in rows_of(dest)}
    for part in parts:
        for x in rows_of(part):
            assert merged[row_key(x)]["metrics"] == x["metrics"]
    table = (dest / "table.md").read_text()
    assert "Finished cells: 4 of 4" in table
    assert (dest / "fig4.png").stat().st_size > 0
    merges = json.loads((dest / "merges.json").read_text())["merges"]
    assert [(m["source"], m["cells_added"]) for m in merges] == [(str(p.resolve()), 2) for p in parts]
    run8 = json.loads((parts[1] / "experiment.json").read_text())["grid"]
    grid8 = {"file": "experiment.json: grid", "started": run8["started"], "command": run8["command"]}
    assert grid8 in merges[1]["commands"]
    assert {"experiment.json", "experiment.json: paper_suite"} <= {c["file"] for c in merges[1]["commands"]}
    r = invoke("report", str(dest))
    assert r.exit_code == 0, r.output
    page = (dest / "report.html").read_text()
    assert f"2 cells merged from <code>{parts[1].resolve()}</code>" in page
    # the command that produced each part, and the final one; a suite's grid section repeats its suite's,
    # so each invocation is shown once (here every command is pytest's own command line)
    assert page.count(f"<code>{html.escape(shlex.join(run8['command']))}</code>") == 3


def test_merge_cli_errors_are_one_line(tmp_path: Path) -> None:
    fake_dir(tmp_path / "a", [1], settings={"epochs": 3})
    fake_dir(tmp_path / "dest", [0])
    for args, fragment in (([str(tmp_path / "missing")], "no results.jsonl"),
                           ([str(tmp_path / "a")], "different settings (epochs)")):
        r = invoke("merge", *args, "--into", str(tmp_path / "dest"))
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr
