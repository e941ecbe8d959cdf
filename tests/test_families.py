"""End-to-end runs of the detector families the framework adds: a classifier-based detector (msp)
under the multi-class protocols, and PyOD's classic detectors on the same splits as ours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import need

from oodscope.bench import BenchConfig, RunOptions, run_bench
from oodscope.cli import cli
from oodscope.detectors import create, registry
from oodscope.upstream.classifier import Classifier
from oodscope.protocols import OneClass
from oodscope.results import load_scores, metric

torch.set_num_threads(1)


def test_msp_score_is_minus_the_max_softmax_of_its_classifier() -> None:
    """The score against its definition, computed independently from the classifier's logits."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 1, 12, 12), dtype=np.uint8)
    labels = np.arange(60) % 3
    det = create("msp", widths=[4, 8], hidden=8, epochs=2, progress=False, temperature=2.0).fit(x, labels=labels)
    out = det.outputs(x[:9])
    with torch.no_grad():
        logits = det.upstream.net(det.upstream.normalize(torch.from_numpy(x[:9] / 255.0).float())).float().numpy()
    np.testing.assert_allclose(out["logits"], logits, rtol=2e-2, atol=2e-2)  # bf16 autocast in the detector
    z = out["logits"] / 2.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["score"], -p.max(axis=1), rtol=1e-5, atol=1e-6)
    assert np.all((-1 <= out["score"]) & (out["score"] <= -1 / 3 + 1e-6))


def test_msp_on_split_mnist_end_to_end(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`oodscope bench --protocol split-mnist --methods msp`: accuracy in the rows, the classifier
    trained once per seed and shared by the variants of its cells."""
    trained = []
    real_fit = Classifier._fit
    monkeypatch.setattr(Classifier, "_fit", lambda self, *a, **k: trained.append(1) or real_fit(self, *a, **k))
    out = tmp_path / "msp"
    r = CliRunner().invoke(cli, ["bench", "--protocol", "split-mnist", "--methods", "msp", "--seeds", "0",
                                 "--preset", "smoke", "--variant", "temperature=1", "--variant", "temperature=1000",
                                 "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1",
                                 "--no-disk-cache", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len(trained) == 1
    for row in rows:
        assert row["protocol"] == "multi-class" and row["protocol_fields"]["benchmark"] == "split-mnist"
        assert set(row["metrics"]) == {"auroc", "aupr_in", "aupr_out", "fpr95", "accuracy", "ece", "ece_mean", "nll"}
        assert row["metrics"]["accuracy"] > 80 and row["upstream"]["kind"] == "classifier"
        assert row["upstream"]["classes"] == 6 and 80 < row["upstream"]["val_accuracy"] <= 100
        assert row["n_validation"] > 3000 and row["n_test"] == 10000
        arrays = load_scores(out, row)
        assert arrays["is_ood"].sum() == np.isin(arrays["labels"], range(6, 10)).sum()
    assert [r["upstream"]["reused"] for r in rows] == [False, True]
    assert rows[0]["metrics"]["accuracy"] == rows[1]["metrics"]["accuracy"]  # one classifier, two temperatures
    assert metric(rows[0], "auroc") > 60
    summary = (out / "summary.md").read_text()
    line = next(x for x in summary.splitlines() if x.startswith("| msp[temperature=1] |"))
    assert "| accuracy |" in summary and " ± " not in line  # one seed: no spread to show


def test_pyod_peers_run_on_the_same_splits_as_ours(tmp_path: Path) -> None:
    for method in ("knn", "iforest", "ocsvm", "ecod"):
        need(registry()[method])
    config = BenchConfig(out=tmp_path / "peers", protocol=OneClass("digits", (3,), "digits", (4,)),
                         methods=["geom", "knn", "iforest", "ocsvm", "ecod"], preset="smoke",
                         run=RunOptions(progress=False, disk_cache=False))
    rows = run_bench(config)
    assert [r["method"] for r in rows] == ["geom", "knn", "iforest", "ocsvm", "ecod"]
    reference = load_scores(config.directory, rows[0])
    for row in rows[1:]:
        arrays = load_scores(config.directory, row)
        assert np.array_equal(arrays["is_ood"], reference["is_ood"]) and np.array_equal(arrays["labels"], reference["labels"])
        assert row["n_train"] == rows[0]["n_train"] and row["upstream"] is None
        assert metric(row, "auroc") > 70  # digit 3 against the other digits, on raw pixels
    assert rows[2]["settings"]["seed"] == 0  # isolation forest: seeded by the cell
