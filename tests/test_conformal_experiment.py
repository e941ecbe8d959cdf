"""The ``conformal`` suite on a small grid directory written the way the bench writes one: it runs
from the command line, resumes without measuring a part again, redraws and is reported; its
numbers match a recomputation written here (p-values and Benjamini-Hochberg from their formulas);
the type-I error of exchangeable scores is near alpha; the vectorised online rules decide as
:class:`oodscope.metrics.conformal.OnlineFDR` does."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from oodscope.bench.measured.conformal import (ConformalPlan, find_cells, lond, lord_plus_plus, measure_type1,
                                               run_conformal)
from oodscope.cli import cli
from oodscope.metrics.conformal import OnlineFDR
from oodscope.results import SCHEMA_VERSION, ResultsLog, save_scores

SHORT = [[300, 0.0], [300, 0.5]]  # a short stream for the runs from Python


def _cell(protocol: str, method: str, seed: int, fields: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "protocol": protocol, "dataset": "digits", "method": method, "variant": None,
            "seed": seed, "preset": "smoke", "protocol_fields": fields}


def _write_grid(directory: Path) -> None:
    """Cells as the bench writes them: a results row naming a scores file of scores, is_ood, labels.
    ``exch``: continuous scores; ``oc``: one-class cells of 150 in-distribution images (too few for
    batches of 1,000)."""
    directory.mkdir()
    log = ResultsLog(directory / "results.jsonl")
    rng = np.random.default_rng(7)
    multi = {"benchmark": "toy", "n_oe": 0, "oe_dataset": None}
    cells = [(_cell("multi-class", "exch", 0, multi), 400)]
    cells += [(_cell("one-class", "oc", 0, {"id_class": c, "n_oe": 0, "oe_classes": "all", "oe_dataset": "digits"}), 150)
              for c in (0, 1)]
    for cell, n_in in cells:
        scores = np.r_[rng.normal(0, 1, n_in), rng.normal(2.5, 1, 600)]
        is_ood = np.r_[np.zeros(n_in, bool), np.ones(600, bool)]
        rel = save_scores(directory, cell, scores, is_ood, np.zeros(is_ood.size, dtype=np.int64))
        log.append({**cell, "metrics": {"auroc": 90.0}, "scores_file": rel})


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("conformal") / "grid"
    _write_grid(directory)
    return directory


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def p_by_formula(cal: np.ndarray, test: np.ndarray) -> np.ndarray:
    return (1 + (cal[None, :] >= test[:, None]).sum(axis=1)) / (cal.size + 1)


def bh_by_formula(p: np.ndarray, q: float) -> np.ndarray:
    order = np.sort(p)
    below = np.flatnonzero(order <= q * np.arange(1, p.size + 1) / p.size)
    return p <= order[below.max()] if below.size else np.zeros(p.size, dtype=bool)


def test_suite_runs_resumes_redraws_and_reports(grid: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["bench", "--suite", "conformal", "--from", str(grid), "--splits", "10", "--no-progress", "--out", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    parts = sorted((out / "parts").glob("*.json"))
    assert len(parts) == 3 * 3 and "9 parts to measure, 0 finished before" in r.output
    text = (out / "table.md").read_text()
    for heading in ("Per-image rule: type-I error", "Benjamini–Hochberg per batch", "Online rules on a stream"):
        assert heading in text
    assert "not feasible" in text and "150 in-distribution images there" in text  # one-class: no batch of 1,000
    for name in ("qq.png", "fdr.png", "online.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    for name in ("type1", "bh", "online", "qq", "fdr", "online_trace"):
        assert len(_read_csv(out / "csv" / f"{name}.csv")) > 1
    classes = {row["class"] for row in _read_csv(out / "csv" / "type1.csv") if row["method"] == "oc"}
    assert classes == {"all", "0", "1"}  # pooled over classes, and per class
    record = json.loads((out / "experiment.json").read_text())
    assert (record["kind"], record["options"]["splits"]) == ("conformal", 10)
    assert record["measured"]["suite"] == "conformal" and record["measured"]["plan"]["streams"] == 10
    stamps = {p: p.stat().st_mtime_ns for p in parts}
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "0 parts to measure, 9 finished before" in again.output
    assert {p: p.stat().st_mtime_ns for p in parts} == stamps  # no part measured again
    (out / "table.md").write_text("stale")
    redraw = CliRunner().invoke(cli, ["bench", "--tables-only", "--out", str(out)])
    assert redraw.exit_code == 0 and (out / "table.md").read_text() == text
    assert CliRunner().invoke(cli, ["report", str(out)]).exit_code == 0
    page = (out / "report.html").read_text()
    assert "Conformal p-values: measured guarantees" in page and "Online rules on a stream" in page
    refused = CliRunner().invoke(cli, ["bench", "--suite", "table3", "--from", str(grid), "--out", str(tmp_path / "t3")])
    assert refused.exit_code == 2 and "does not take --from" in refused.output
    bare = CliRunner().invoke(cli, ["bench", "--suite", "conformal", "--out", str(tmp_path / "bare")])
    assert bare.exit_code == 2 and "needs --from DIR" in bare.output
    unknown = CliRunner().invoke(cli, ["bench", "--suite", "conformal", "--from", str(grid), "--methods", "msp",
                                       "--out", str(tmp_path / "unknown")])
    assert unknown.exit_code == 2 and "msp not in" in unknown.output and not (tmp_path / "unknown").exists()


def test_tables_match_a_recomputation_of_one_split(grid: Path, tmp_path: Path) -> None:
    """With one split the tables hold that split's numbers: recomputed here from the same seeded
    draws, with p-values and BH by their formulas."""
    plan = ConformalPlan(sources=[str(grid)], methods=["exch"], splits=1, schedule=SHORT)
    run_conformal(plan, tmp_path, progress=False, figures=False)
    (cell,) = find_cells(plan)
    inside, outside, _ = cell.load()
    perm = np.random.default_rng([cell.seed, 1, 0]).permutation(inside.size)
    cal, test = inside[perm[:200]], inside[perm[200:]]
    p = p_by_formula(cal, test)
    rows = {(r["rule"], float(r["level"])): r for r in _read_csv(tmp_path / "csv" / "type1.csv")}
    for a in plan.alphas:
        assert float(rows[("p <= alpha", a)]["mean"]) == pytest.approx(np.mean(p <= a), abs=1e-6)
    k = int(np.ceil(0.95 * cal.size))  # the 95 % threshold: the k-th smallest calibration score accepted
    alarms = np.mean(test > np.sort(cal)[k - 1])
    assert float(rows[("accept-95%", 0.95)]["mean"]) == pytest.approx(alarms, abs=1e-6)
    bh = {(int(r["batch"]), float(r["ood_share"]), float(r["q"])): r for r in _read_csv(tmp_path / "csv" / "bh.csv")}
    config = [(m, pi) for m in plan.batches for pi in plan.shares].index((100, 0.5))
    r = np.random.default_rng([cell.seed, 2, config, 0])
    perm = r.permutation(inside.size)
    batch = np.r_[inside[perm[:50]], outside[r.choice(outside.size, 50, replace=False)]]
    p = p_by_formula(inside[perm[50:]], batch)
    for q in plan.qs:
        flags = bh_by_formula(p, q)
        row = bh[(100, 0.5, q)]
        assert float(row["fdr_mean"]) == pytest.approx(flags[:50].sum() / max(flags.sum(), 1), abs=1e-6)
        assert float(row["power_mean"]) == pytest.approx(flags[50:].mean(), abs=1e-6)
    assert (1000, 0.5, 0.1) not in bh  # 500 inliers from 400 images: not feasible


def test_type1_error_of_exchangeable_scores_is_near_alpha() -> None:
    rng = np.random.default_rng(3)
    inside = rng.normal(size=2000)
    plan = ConformalPlan(sources=["unused"], splits=300)
    result = measure_type1(inside, rng.normal(3, 1, 100), 11, plan)
    assert result["n_cal"] == 1000
    for a in plan.alphas:
        s = result["alpha"][str(a)]
        exact = np.floor(a * 1001) / 1001  # P(p <= a) for continuous scores
        assert abs(s["mean"] - exact) < 4 * s["std"] / np.sqrt(s["n"]), (a, s)
    assert abs(result["accept95"]["mean"] - 0.05) < 0.005
    share = dict(zip(result["qq"]["u"], result["qq"]["share"]))
    assert abs(share[0.5] - 0.5) < 0.05 and share[1.0] == 1.0


@pytest.mark.parametrize("rule", ["lond", "lord++"])
def test_vectorised_online_rules_decide_as_online_fdr(rule: str) -> None:
    rng = np.random.default_rng(5)
    p = 10.0 ** (-6 * rng.random((4, 400)))  # log-uniform on [1e-6, 1]: many p-values near the rules' levels
    qs = np.array([0.05, 0.1, 0.2, 0.1])  # one level per stream
    decided = lond(p, qs) if rule == "lond" else lord_plus_plus(p, qs)
    assert decided.sum(axis=1).min() > 20 and (~decided).sum(axis=1).min() > 20
    for row, q, got in zip(p, qs, decided):
        assert np.array_equal(OnlineFDR(float(q), rule).test_many(row), got)
