"""The stress grid of outlier sources (oodscope.bench.sanity.stress): one one-class grid per (data set,
outlier source), layers against its own f's geom in one table; resume and refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from oodscope.bench.sanity.stress import SOURCES, StressPlan, stress_table
from oodscope.cli import cli
from oodscope.errors import InputError


def _row(method: str, c: int, seed: int, auroc: float) -> dict:
    return {"method": method, "seed": seed, "protocol_fields": {"id_class": c}, "metrics": {"auroc": auroc}}


def test_the_table_compares_layers_with_geom_per_class_over_seeds() -> None:
    rows = [_row("geom", 0, 0, 90.0), _row("geom", 0, 1, 92.0), _row("layers", 0, 0, 85.0), _row("layers", 0, 1, 87.0),
            _row("geom", 1, 0, 80.0), _row("layers", 1, 0, 80.5)]
    table = stress_table({("mnist", "synthetic-blobs"): rows}, ["geom", "layers"])
    (row,) = table.rows
    assert row[:5] == ["mnist", "synthetic-blobs", "2", "85.50", "83.25"]  # means of class means
    assert row[5] == "-2.25" and row[6] == "0: -5.00" and row[7] == "1"  # class 0 falls 5 points


def test_stress_grid_end_to_end_and_resume(tmp_path: Path, data_root: Path) -> None:
    args = ["bench", "--suite", "stress", "--dataset", "mnist", "--classes", "0", "--seeds", "0", "--preset", "smoke",
            "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1", "--out", str(tmp_path),
            "--cache", str(tmp_path / "cache")]
    runner = CliRunner()
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    reused = re.search(r"f's taps on a batch reused (\d+) times, computed (\d+) times", r.output)
    assert reused and int(reused[1]) > int(reused[2])  # the four later sources read f's passes of the first
    for i, source in enumerate(SOURCES["mnist"]):
        rows = [json.loads(x) for x in (tmp_path / f"mnist--{source}" / "results.jsonl").read_text().splitlines()]
        # geom uses no outliers: it runs in the first source's grid only and stands for every source
        assert {row["method"] for row in rows} == ({"geom", "layers"} if i == 0 else {"layers"})
        assert {row["protocol_fields"]["oe_dataset"] for row in rows} == {source}
    (geom,) = [json.loads(x)["metrics"]["auroc"] for x in (tmp_path / f"mnist--{SOURCES['mnist'][0]}" / "results.jsonl")
               .read_text().splitlines() if json.loads(x)["method"] == "geom"]
    table = (tmp_path / "table.md").read_text()
    lines = {s: next(line for line in table.splitlines() if line.startswith(f"| mnist | {s} |")) for s in SOURCES["mnist"]}
    assert all(line.split(" | ")[3] == f"{geom:.2f}" for line in lines.values())  # the same geom column for every source
    before = {s: (tmp_path / f"mnist--{s}" / "results.jsonl").read_text() for s in SOURCES["mnist"]}
    again = runner.invoke(cli, args)  # resumes: every cell finished, nothing appended
    assert again.exit_code == 0 and (tmp_path / "table.md").read_text() == table
    assert before == {s: (tmp_path / f"mnist--{s}" / "results.jsonl").read_text() for s in SOURCES["mnist"]}
    refused = runner.invoke(cli, [*args, "--oe", "mnist"])
    assert refused.exit_code == 2 and "its own outlier sources" in refused.output


def test_the_plan_refuses_what_it_cannot_compare() -> None:
    with pytest.raises(InputError, match="geom and layers"):
        StressPlan(methods=["geom", "knn"]).pairs()
    with pytest.raises(InputError, match="no outlier sources"):
        StressPlan(datasets=["cifar10"]).pairs()
    assert StressPlan(datasets=["cifar10"], sources={"cifar10": ["cifar100"]}).pairs() == [("cifar10", "cifar100")]
