"""Tests of oodscope.bench: settings of cells, the results log, summary.md, resume after kills,
the upstream cache shared by cells and processes."""

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

from oodscope.bench import BenchConfig, RunOptions, run_bench
from oodscope.bench.lock import directory_lock
from oodscope.bench.presets import cell_settings
from oodscope.detectors import registry, settings_for
from oodscope.upstream.geom_net import GeomNet
from oodscope.detectors.layers import LayersDetector
from oodscope.errors import DataError, InputError
from oodscope.protocols import Cell, DataStore, MethodInfo, OneClass
from oodscope.results import ResultsLog, field, metric, row_key

torch.set_num_threads(1)


def tiny_config(out: Path, cache: Path | None = None, **kw) -> BenchConfig:
    """digits (bundled), two classes, smoke preset, outliers from the other digits."""
    protocol = kw.pop("protocol", OneClass("digits", kw.pop("classes", (0, 1)), "digits", (4,)))
    run = RunOptions(progress=False, cache_dir=cache, disk_cache=cache is not None)
    base = dict(out=out, protocol=protocol, methods=["geom", "layers"], preset="smoke", run=run,
                overrides={"batch_size": 64})
    base.update(kw)
    return BenchConfig(**base)


@pytest.fixture
def fit_counter(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts trainings of GEOM's f and of layers' head."""
    calls: Counter = Counter()
    train_f, train_g = GeomNet._fit, LayersDetector._train_head

    def counted_f(self, *a, **k):
        calls["f"] += 1
        return train_f(self, *a, **k)

    def counted_g(self, *a, **k):
        calls["g"] += 1
        return train_g(self, *a, **k)

    monkeypatch.setattr(GeomNet, "_fit", counted_f)
    monkeypatch.setattr(LayersDetector, "_train_head", counted_g)
    return calls


def keys(path: Path) -> list[str]:
    return [row_key(r) for r in ResultsLog(path).rows()]


# -- settings of a cell ---------------------------------------------------------------------------
def test_cell_settings_apply_preset_variant_seed_and_augmentation() -> None:
    cell = OneClass("cifar10", (3,), "cifar100").cell("layers", 3, 2, "smoke", 16, "all", (("taps", ("z4",)),))
    s = cell_settings(cell, "cpu", {"g_steps": 7, "epochs": 2}, progress=False)
    assert s["taps"] == ["z4"] and s["seed"] == 2 and s["g_steps"] == 7 and s["epochs"] == 2
    assert s["widths"] == [8, 8, 8] and s["augment"] == "cifar" and s["device"] == "cpu" and s["progress"] is False
    geom = cell_settings(OneClass("mnist").cell("geom", 0, 0, "cpu", 16, "all"), None, {"g_steps": 7}, True)
    assert "g_steps" not in geom and geom["augment"] == "none"  # only settings the method knows


def test_every_preset_accepted_by_every_method() -> None:
    for method, cls in registry().items():
        for preset in ("cpu", "paper", "smoke", "demo"):
            cls(**settings_for(method, preset))  # raises on unknown settings or bad values


def test_presets_do_not_leak_mutations() -> None:
    s = settings_for("geom", "smoke")
    s["widths"].append(99)
    assert settings_for("geom", "smoke")["widths"] == [8, 8, 8]


def test_one_class_grid_and_grouping() -> None:
    protocol = OneClass("mnist", (0, 1, 2), "emnist-letters", (16, "all"), ("all", 3))
    methods = [MethodInfo("geom", False, frozenset({"epochs"})), MethodInfo("layers", True, frozenset({"taps"}))]
    cells = protocol.cells(methods, [0, 1], "cpu", DataStore(), [{"taps": ["z4"]}, {"taps": ["z1", "z2"]}])
    assert len(cells) == 3 * 2 * 2 * 2 * (1 + 2)
    assert len({c.key() for c in cells}) == len(cells)
    seen, previous = set(), None
    for c in cells:  # each group's cells are contiguous
        group = protocol.group(c)
        if group != previous:
            assert group not in seen
            seen.add(group)
            previous = group
    assert {c.label for c in cells} == {"geom", "layers[z4]", "layers[z1+z2]"}
    cell = cells[5]
    assert row_key(json.loads(json.dumps(cell.row_fields()))) == cell.key()


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
    log.path.write_text('{"schema": 7, "method": "x"}\n')
    with pytest.raises(DataError, match="row 1.*schema version 7"):
        log.rows()


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
        for name in ("schema", "protocol", "dataset", "method", "variant", "seed", "preset", "protocol_fields",
                     "metrics", "fit_seconds", "score_seconds", "upstream", "n_train", "n_test", "settings",
                     "oodscope_version", "timestamp", "scores_file"):
            assert name in row, name
        assert row["schema"] == 2 and row["protocol"] == "one-class"
        assert set(row["protocol_fields"]) == {"id_class", "n_oe", "oe_classes", "oe_dataset"}
        assert set(row["metrics"]) == {"auroc", "aupr_in", "aupr_out", "fpr95"} and 0 <= row["metrics"]["auroc"] <= 100
        assert row["n_test"] == 599 and row["n_outliers"] == (4 if row["method"] == "layers" else 0)  # geom uses none
    geom0, layers0 = (json.loads(x) for x in lines[:2])
    assert geom0["upstream"]["kind"] == layers0["upstream"]["kind"] == "geom-f"
    assert geom0["upstream"]["key"] == layers0["upstream"]["key"]
    assert (geom0["upstream"]["reused"], layers0["upstream"]["reused"]) == (False, True)
    assert layers0["fit_seconds"] >= layers0["upstream"]["fit_seconds"] == geom0["upstream"]["fit_seconds"]
    assert layers0["settings"]["g_steps"] == 5 and "g_steps" not in geom0["settings"]

    # kill simulation: the last row is lost and the one before it is cut mid-line
    results.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    fit_counter.clear()
    rows = run_bench(tiny_config(out))
    assert fit_counter == Counter({"f": 1, "g": 1})  # only class 1 recomputed, once
    new_lines = results.read_text().splitlines(keepends=True)
    assert new_lines[:2] == lines[:2]  # finished rows untouched
    assert len(new_lines) == 4 and len(rows) == 4
    assert Counter(keys(results)) == Counter(row_key(json.loads(x)) for x in lines)

    # nothing left to do: no training at all
    fit_counter.clear()
    run_bench(tiny_config(out))
    assert fit_counter == Counter()
    assert len(results.read_text().splitlines()) == 4
    run_info = json.loads((out / "experiment.json").read_text())["grid"]
    assert run_info["cells"] == 4 and run_info["finished_at_start"] == 4
    assert run_info["config"]["protocol"]["protocol"] == "one-class"


def test_disk_cache_shares_f_across_runs_with_identical_results(tmp_path: Path, fit_counter: Counter) -> None:
    cache = tmp_path / "cache"
    first = run_bench(tiny_config(tmp_path / "a", cache, methods=["geom"]))
    assert fit_counter["f"] == 2 and len(list((cache / "geom-f").iterdir())) == 2
    fit_counter.clear()
    second = run_bench(tiny_config(tmp_path / "b", cache, methods=["geom", "layers"]))  # another process would do the same
    assert fit_counter == Counter({"g": 2})  # f read from disk, not retrained
    by_key = {row_key(r): r for r in second}
    for r in first:
        again = by_key[row_key(r)]
        assert again["metrics"] == r["metrics"] and again["upstream"]["reused"] is True
        assert again["upstream"]["fit_seconds"] == r["upstream"]["fit_seconds"]
    # a damaged cache entry is trained again, not trusted
    weights = next((cache / "geom-f").iterdir()) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"xxxxxxxx")
    fit_counter.clear()
    third = run_bench(tiny_config(tmp_path / "c", cache, methods=["geom"]))
    assert fit_counter["f"] == 1
    assert [r["metrics"] for r in third] == [r["metrics"] for r in first]


def test_summary_table_matches_rows(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = run_bench(tiny_config(out, seeds=[0, 1], classes=(2,), methods=["geom"]))
    text = (out / "summary.md").read_text()
    assert "Finished cells: 2 of 2" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["class", "geom"]
    body = {c.strip("| ").split("|")[0].strip(): [float(v) for v in c.strip("|").split("|")[1:]]
            for c in table[1:3]}
    expected = np.mean([metric(r, "auroc") for r in rows])
    assert body["2"][0] == pytest.approx(expected, abs=0.006)
    assert body["mean"][0] == pytest.approx(expected, abs=0.006)
    assert not list(out.glob(".summary.md.*"))  # no temp files left behind


def test_second_grid_in_same_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_bench(tiny_config(out, methods=["geom"], classes=(3,)))
    rows = run_bench(tiny_config(out, methods=["geom"], classes=(4,)))
    assert [field(r, "id_class") for r in rows] == [4]
    text = (out / "summary.md").read_text()
    assert "Finished cells: 1 of 1 (2 rows in results.jsonl in all)" in text
    assert "\n| 3 | " in text and "\n| 4 | " in text
    record = json.loads((out / "experiment.json").read_text())
    assert "kind" not in record and sorted(record) == ["grid", "schema"]  # run_bench from Python: its section only
    run_info = record["grid"]
    assert run_info["config"]["protocol"]["classes"] == [4]
    assert len(run_info["history"]) == 1 and run_info["history"][0]["finished_at_start"] == 0


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_bench(tiny_config(out, methods=["geom"], classes=(0,)))
    with pytest.raises(InputError, match="different settings.*epochs|epochs.*different"):
        run_bench(tiny_config(out, methods=["geom"], classes=(0,), overrides={"batch_size": 64, "epochs": 2}))


def test_resume_reads_a_setting_a_row_lacks_at_its_value_before_the_setting_existed(tmp_path: Path) -> None:
    """A row written before ``knn_weight`` existed was computed without the kNN part (layers'
    saved_defaults: 0): resuming it with the new default refuses, with knn_weight=0 it resumes."""
    out = tmp_path / "run"
    run_bench(tiny_config(out, methods=["layers"], classes=(0,), overrides={"batch_size": 64, "knn_weight": 0.0}))
    log = out / "results.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    for row in rows:
        del row["settings"]["knn_weight"], row["settings"]["knn_k"], row["settings"]["knn_bank"]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"different settings \(knn_weight\)"):
        run_bench(tiny_config(out, methods=["layers"], classes=(0,)))
    again = run_bench(tiny_config(out, methods=["layers"], classes=(0,), overrides={"batch_size": 64, "knn_weight": 0.0}))
    assert [r["timestamp"] for r in again] == [r["timestamp"] for r in rows]  # nothing ran again


def test_bad_grid_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="0..9"):
        run_bench(tiny_config(tmp_path / "a", classes=(10,)))
    with pytest.raises(InputError, match="unknown method"):
        run_bench(tiny_config(tmp_path / "b", methods=["nope"]))
    with pytest.raises(InputError, match="not known"):
        run_bench(tiny_config(tmp_path / "c", overrides={"epoch": 1}))
    with pytest.raises(InputError, match="'backbone' must be one of small, wrn"):
        run_bench(tiny_config(tmp_path / "d", overrides={"backbone": "foo"}))
    with pytest.raises(InputError, match="msp: need the labels.*multi-class"):
        run_bench(tiny_config(tmp_path / "e", methods=["msp"]))
    with pytest.raises(InputError, match="variant settings"):
        run_bench(tiny_config(tmp_path / "f", variants=[{"nonsense": 1}]))
    assert not (tmp_path / "a" / "results.jsonl").exists()


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
            "--threads", "1", "--set", "progress=false", "--set", "batch_size=64", "--cache", str(tmp_path / "cache")]
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
    counts = Counter(keys(results))
    assert len(counts) == 10 and set(counts.values()) == {1}
    complete = before[: before.rfind(b"\n") + 1]
    assert results.read_bytes().startswith(complete)  # rows finished before the kill kept as they were
    assert killed and n_before < 10  # it really was interrupted
    assert f"{10 - n_before} of 10 cells to run" in done.stderr
    summary = (out / "summary.md").read_text()
    assert "Finished cells: 10 of 10" in summary
    assert re.search(r"^\| mean \| [0-9.]+ \| [0-9.]+ \|$", summary, re.M)


def test_cells_of_a_suite_must_belong_to_the_protocol(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "x")
    wrong = Cell("one-class", "mnist", "geom", 0, "smoke", (("id_class", 0), ("n_oe", 0), ("oe_classes", "all"),
                                                            ("oe_dataset", "digits")))
    with pytest.raises(InputError, match="one-class on 'mnist' in a one-class run on 'digits'"):
        run_bench(config, cells=[wrong])
