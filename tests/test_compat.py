"""Results written before the framework change (tests/fixtures/v1, made by the earlier oodscope:
a digits grid with taps variants, a fig4 suite merged from two parts) still read, resume, merge
and rebuild into the same tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from oodscope.bench import BenchConfig, RunOptions, run_bench
from oodscope.bench.merge import merge_runs
from oodscope.bench.paper.files import rebuild_tables
from oodscope.errors import InputError
from oodscope.protocols import OneClass
from oodscope.results import ResultsLog, first_per_cell, normalize, row_key, row_label

torch.set_num_threads(1)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v1"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A writable copy of the fixtures."""
    shutil.copytree(FIXTURES, tmp_path / "v1")
    return tmp_path / "v1"


def test_old_rows_read_in_the_current_schema() -> None:
    raw = ResultsLog(FIXTURES / "grid" / "results.jsonl").load()
    assert all("schema" not in r and "auroc" in r for r in raw)
    rows = [normalize(r) for r in raw]
    assert [row_label(r) for r in rows[:3]] == ["geom", "layers[z4]", "layers[z3+z4+ptrue]"]
    for r, v1 in zip(rows, raw):
        assert r["protocol"] == "one-class" and r["metrics"]["auroc"] == v1["auroc"]
        assert r["protocol_fields"] == {k: v1[k] for k in ("id_class", "n_oe", "oe_classes", "oe_dataset")}
        if v1["method"] == "bce":  # no shared network
            assert "base_fit_seconds" not in v1 and r["upstream"] is None
        else:
            assert r["upstream"]["fit_seconds"] == v1["base_fit_seconds"] and r["upstream"]["kind"] == "geom-f"


def test_an_old_grid_resumes_with_nothing_to_run(old: Path) -> None:
    """The same grid, planned by today's protocol with the settings the old rows were run with
    (layers' settings added since at their former values), finds every cell of the old directory
    finished (same keys, same settings): nothing is trained and no row is added. Today's defaults
    (float32 scoring, layers' settings) differ from those rows, and resuming with them is refused
    by name."""
    before = (old / "grid" / "results.jsonl").read_bytes()

    def config(overrides: dict) -> BenchConfig:
        return BenchConfig(out=old / "grid", protocol=OneClass("digits", (0, 1), "digits", (8,)),
                           methods=["geom", "layers"], preset="smoke",
                           variants=[{"taps": ["z4"]}, {"taps": ["z3", "z4", "ptrue"]}],
                           overrides={"batch_size": 64, "progress": False, **overrides},
                           run=RunOptions(progress=False, disk_cache=False))

    # the old rows scored in bfloat16 (their amp was on; float32 scoring is today's default)
    with pytest.raises(InputError, match=r"different settings \(precision\)"):
        run_bench(config({}))
    with pytest.raises(InputError, match=r"different settings \(f_weight, g_generic, knn_tap, knn_weight\)"):
        run_bench(config({"precision": "bfloat16"}))
    messages: list[str] = []
    rows = run_bench(config({"f_weight": 0.0, "g_generic": 0, "knn_weight": 0.0, "knn_tap": "z4", "precision": "bfloat16"}),
                     log=messages.append)
    assert messages == [f"all 6 cells already finished in {old / 'grid'}"]
    assert len(rows) == 6 and (old / "grid" / "results.jsonl").read_bytes() == before


def test_an_old_suite_rebuilds_the_same_tables(old: Path) -> None:
    table_md = (old / "suite" / "table.md").read_text()
    table_csv = (old / "suite" / "table.csv").read_text()
    rebuild_tables(old / "suite")
    new_md = (old / "suite" / "table.md").read_text()
    assert (old / "suite" / "table.csv").read_text() == table_csv
    differ = [(a, b) for a, b in zip(table_md.splitlines(), new_md.splitlines()) if a != b]
    assert len(table_md.splitlines()) == len(new_md.splitlines())
    assert len(differ) == 1 and differ[0][0].startswith("Training plus scoring time")  # the wording only
    assert "| total | 28 |" in new_md


def test_old_and_new_directories_merge(old: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    config = BenchConfig(out=new, protocol=OneClass("digits", (0, 1, 2), "digits", (8,)), methods=["geom", "bce"],
                         preset="smoke", overrides={"batch_size": 64, "progress": False},
                         run=RunOptions(progress=False, disk_cache=False))
    run_bench(config)
    report = merge_runs([old / "grid"], new)  # classes 0 and 1 of geom and bce are in both
    assert report.added == {str(old / "grid"): 4} and report.skipped == {str(old / "grid"): 4}
    rows = ResultsLog(new / "results.jsonl").rows()
    assert len(rows) == 10 and len(first_per_cell(rows)) == 10
    raw = [json.loads(x) for x in (new / "results.jsonl").read_text().splitlines()]
    assert sum("schema" not in r for r in raw) == 4  # merged rows keep the schema they were written in
    assert {row_label(r) for r in rows} == {"geom", "bce", "layers[z4]", "layers[z3+z4+ptrue]"}
    old_rows = {row_key(r): r for r in ResultsLog(old / "grid" / "results.jsonl").rows()}
    # today's geom and bce cells equal the earlier oodscope's: to the last digit on the earlier sessions'
    # machines, and on an AMX-BF16 CPU with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16; with its default (AMX) or
    # AVX2 kernels bfloat16 rounds otherwise: AUROC moves by 0.01-0.03 points, FPR95 by one image (0.37)
    for r in rows[:6]:
        if row_key(r) in old_rows:
            assert r["metrics"] == pytest.approx(old_rows[row_key(r)]["metrics"], abs=0.5)
