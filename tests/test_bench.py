"""Tests of oodscope.bench: presets, cells, the results log, summary.md, resume after kills."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from oodscope.bench import PRESETS, BenchConfig, ResultsLog, expand_cells, preset_settings, row_key, run_bench
from oodscope.bench.lock import directory_lock
from oodscope.detectors import DETECTORS, GeomDetector, LayersDetector, create
from oodscope.errors import DataError, InputError

torch.set_num_threads(1)

KEY_FIELDS = ("dataset", "method", "id_class", "n_oe", "oe_classes", "oe_dataset", "seed", "preset", "taps_variant")


def tiny_config(out: Path, **kw) -> BenchConfig:
    """digits (bundled), two classes, smoke preset, outliers from the other digits."""
    base = dict(out=out, dataset="digits", oe_dataset="digits", methods=["geom", "layers"], classes=[0, 1],
                n_oe=[4], preset="smoke", progress=False, overrides={"batch_size": 64})
    base.update(kw)
    return BenchConfig(**base)


@pytest.fixture
def fit_counter(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts trainings of GEOM's f and of layers' head."""
    calls: Counter = Counter()
    train_f, train_g = GeomDetector.train_backbone, LayersDetector._train_head

    def counted_f(self, *a, **k):
        calls["f"] += 1
        return train_f(self, *a, **k)

    def counted_g(self, *a, **k):
        calls["g"] += 1
        return train_g(self, *a, **k)

    monkeypatch.setattr(GeomDetector, "train_backbone", counted_f)
    monkeypatch.setattr(LayersDetector, "_train_head", counted_g)
    return calls


def keys(path: Path) -> list[tuple]:
    return [row_key(json.loads(line)) for line in path.read_text().splitlines()]


# -- presets ------------------------------------------------------------------------------------
def test_presets_filter_by_method_defaults() -> None:
    assert "g_steps" not in preset_settings("smoke", "geom")
    assert preset_settings("smoke", "layers")["g_steps"] == 5
    assert preset_settings("smoke", "geom")["widths"] == [8, 8, 8]
    paper = preset_settings("paper", "layers")
    assert paper["backbone"] == "wrn" and paper["transforms"] == "geom72" and paper["device"] == "cuda"
    assert paper["g_steps"] == 5000 and "g_steps" not in preset_settings("paper", "geom")
    assert preset_settings("paper", "geom", device="cpu")["device"] == "cpu"
    assert preset_settings("cpu", "geom") == {}
    with pytest.raises(InputError, match="unknown preset"):
        preset_settings("fast", "geom")
    with pytest.raises(InputError, match="unknown method"):
        preset_settings("cpu", "nope")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_accepted_by_every_method(preset: str) -> None:
    for method in DETECTORS:
        create(method, **preset_settings(preset, method))  # raises on unknown settings


def test_presets_do_not_leak_mutations() -> None:
    s = preset_settings("smoke", "geom")
    s["widths"].append(99)
    assert preset_settings("smoke", "geom")["widths"] == [8, 8, 8]


# -- cells ----------------------------------------------------------------------------------------
def test_expand_cells_grid_and_grouping() -> None:
    cells = expand_cells("mnist", ["geom", "layers"], [0, 1, 2], "emnist-letters", [16, "all"], ["all", 3], [0, 1],
                         "cpu", taps_variants=[("z4",), ("z1", "z2")], taps_methods=frozenset({"layers"}))
    assert len(cells) == 3 * 2 * 2 * 2 * (1 + 2)
    assert len({c.key() for c in cells}) == len(cells)
    seen, previous = set(), None
    for c in cells:  # each group's cells are contiguous
        if c.group != previous:
            assert c.group not in seen
            seen.add(c.group)
            previous = c.group
    assert {c.label for c in cells} == {"geom", "layers[z4]", "layers[z1+z2]"}
    cell = cells[5]
    assert row_key(json.loads(json.dumps(cell.fields()))) == cell.key()


# -- results log ---------------------------------------------------------------------------------
def test_results_log_repairs_partial_line(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "results.jsonl")
    assert log.load() == []
    log.append({"a": 1})
    log.append({"a": 2})
    with open(log.path, "ab") as f:
        f.write(b'{"a": 3, "b"')
    assert log.load() == [{"a": 1}, {"a": 2}]
    assert log.path.read_bytes().endswith(b"\n")
    log.append({"a": 4})
    assert [json.loads(x)["a"] for x in log.path.read_text().splitlines()] == [1, 2, 4]
    log.path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        log.load()


# -- running and resuming ------------------------------------------------------------------------
def test_run_resume_after_truncation(tmp_path: Path, fit_counter: Counter) -> None:
    out = tmp_path / "run"
    rows = run_bench(tiny_config(out))
    results = out / "results.jsonl"
    assert len(rows) == 4
    assert fit_counter == Counter({"f": 2, "g": 2})  # f shared by geom and layers of a class
    lines = results.read_text().splitlines(keepends=True)
    assert len(lines) == 4
    for line in lines:
        row = json.loads(line)
        for field in (*KEY_FIELDS, "auroc", "aupr_in", "aupr_out", "fpr95", "fit_seconds", "score_seconds",
                      "n_train", "n_test", "settings", "oodscope_version", "timestamp"):
            assert field in row, field
        assert 0 <= row["auroc"] <= 100
        assert row["n_test"] == 599 and row["n_outliers"] == 4
    geom0, layers0 = (json.loads(x) for x in lines[:2])
    assert layers0["shared_base"] is True
    assert layers0["base_fit_seconds"] == pytest.approx(geom0["fit_seconds"])
    assert layers0["fit_seconds"] >= layers0["base_fit_seconds"]
    assert layers0["settings"]["g_steps"] == 5 and "g_steps" not in geom0["settings"]

    # kill simulation: the last row is lost and the one before it is cut mid-line
    results.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    fit_counter.clear()
    rows = run_bench(tiny_config(out))
    assert fit_counter == Counter({"f": 1, "g": 1})  # only class 1 recomputed, once
    new_lines = results.read_text().splitlines(keepends=True)
    assert new_lines[:2] == lines[:2]  # finished rows untouched
    assert len(new_lines) == 4 and len(rows) == 4
    assert Counter(keys(results)) == Counter({c.key(): 1 for c in expand_cells(
        "digits", ["geom", "layers"], [0, 1], "digits", [4], ["all"], [0], "smoke")})

    # nothing left to do: no training at all
    fit_counter.clear()
    run_bench(tiny_config(out))
    assert fit_counter == Counter()
    assert len(results.read_text().splitlines()) == 4
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["cells"] == 4 and run_info["finished_at_start"] == 4


def test_summary_table_matches_rows(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = run_bench(tiny_config(out, seeds=[0, 1], classes=[2], methods=["geom"]))
    text = (out / "summary.md").read_text()
    assert "Finished cells: 2 of 2" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["class", "geom"]
    body = {c.strip("| ").split("|")[0].strip(): [float(v) for v in c.strip("|").split("|")[1:]]
            for c in table[1:3]}
    expected = np.mean([r["auroc"] for r in rows])
    assert body["2"][0] == pytest.approx(expected, abs=0.006)
    assert body["mean"][0] == pytest.approx(expected, abs=0.006)
    assert not list(out.glob(".summary.md.*"))  # no temp files left behind


def test_second_grid_in_same_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_bench(tiny_config(out, methods=["geom"], classes=[3]))
    rows = run_bench(tiny_config(out, methods=["geom"], classes=[4]))
    assert [r["id_class"] for r in rows] == [4]
    text = (out / "summary.md").read_text()
    assert "Finished cells: 1 of 1 (2 rows in results.jsonl in all)" in text
    assert "\n| 3 | " in text and "\n| 4 | " in text
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["config"]["classes"] == [4]
    assert len(run_info["history"]) == 1 and run_info["history"][0]["finished_at_start"] == 0


def test_summary_methods_as_columns(tmp_path: Path) -> None:
    from oodscope.bench.summary import auroc_table

    rows = [{"method": m, "id_class": c, "auroc": a, "taps_variant": t}
            for m, c, a, t in [("geom", 0, 90.0, None), ("layers", 0, 95.0, None), ("geom", 1, 80.0, None),
                               ("layers", 0, 70.0, ["z4"])]]
    lines = auroc_table(rows).splitlines()
    assert lines[0] == "| class | geom | layers | layers[z4] |"
    assert lines[2] == "| 0 | 90.00 | 95.00 | 70.00 |"
    assert lines[3] == "| 1 | 80.00 | - | - |"
    assert lines[4] == "| mean | 85.00 | 95.00 | 70.00 |"


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_bench(tiny_config(out, methods=["geom"], classes=[0]))
    with pytest.raises(InputError, match="different settings.*epochs|epochs.*different"):
        run_bench(tiny_config(out, methods=["geom"], classes=[0], overrides={"batch_size": 64, "epochs": 2}))


def test_bad_grid_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="0..9"):
        run_bench(tiny_config(tmp_path / "a", classes=[10]))
    with pytest.raises(InputError, match="unknown methods"):
        run_bench(tiny_config(tmp_path / "b", methods=["nope"]))
    with pytest.raises(InputError, match="not known"):
        run_bench(tiny_config(tmp_path / "c", overrides={"epoch": 1}))


def test_directory_lock(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with directory_lock(tmp_path):
        with pytest.raises(InputError, match="another benchmark"):
            run_bench(tiny_config(tmp_path))


def test_kill_at_random_moment_then_resume(tmp_path: Path) -> None:
    """SIGKILL a real `oodscope bench` process right after its first row, then resume."""
    out = tmp_path / "run"
    exe = Path(sys.executable).with_name("oodscope")
    args = [str(exe), "bench", "--dataset", "digits", "--oe", "digits", "--classes", "0-4", "--methods",
            "geom,layers", "--n-oe", "4", "--preset", "smoke", "--out", str(out), "--no-progress",
            "--threads", "1", "--set", "progress=false", "--set", "batch_size=64"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if results.exists() and results.stat().st_size > 0:
                break
            time.sleep(0.02)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert results.exists()
    before = results.read_bytes()
    n_before = before.count(b"\n")
    assert n_before >= 1
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    counts = Counter(row_key(r) for r in rows)
    assert len(counts) == 10 and set(counts.values()) == {1}
    complete = before[: before.rfind(b"\n") + 1]
    assert results.read_bytes().startswith(complete)  # rows finished before the kill kept as they were
    assert killed and n_before < 10  # it really was interrupted
    assert f"{10 - n_before} of 10 cells to run" in done.stderr
    summary = (out / "summary.md").read_text()
    assert "Finished cells: 10 of 10" in summary
    assert re.search(r"^\| mean \| [0-9.]+ \| [0-9.]+ \|$", summary, re.M)
