"""The ``verification`` suite (oodscope.bench.measured.verification): certified accuracy per model, bound
method and ε with its soundness checks, rotation certificates and neuron coverage, end to end
through ``oodscope bench`` on MNIST at the smoke preset; resume, tables and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from oodscope.bench.experiment import experiment_of
from oodscope.bench.measured.tables import SUITE_TABLES
from oodscope.bench.measured.verification import VERIFY_MODELS, VerificationPlan, model_settings, plan_cells
from oodscope.cli import cli
from oodscope.detectors import create
from oodscope.upstream.classifier import classifier_net
from oodscope.errors import InputError
from oodscope.verify import as_layers


def _args(tmp_path: Path, data_root: Path, *extra: str) -> list[str]:
    return ["bench", "--suite", "verification", "--protocol", "split-mnist", "--preset", "smoke", "--seeds", "0",
            "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1", "--no-disk-cache",
            "--out", str(tmp_path), *extra]


def test_verification_suite_end_to_end_sound_resumable_and_reported(tmp_path: Path, data_root: Path) -> None:
    runner = CliRunner()
    # the models split over two runs (as over two processes), gathered by merge
    for name, models in (("a", "standard"), ("b", "adversarial,certified")):
        r = runner.invoke(cli, _args(tmp_path / name, data_root, "--methods", models))
        assert r.exit_code == 0, r.output
    merged = runner.invoke(cli, ["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--into", str(tmp_path)])
    assert merged.exit_code == 0, merged.output
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    plan = VerificationPlan.for_preset("smoke", benchmark="split-mnist")
    assert len(rows) == len(plan_cells(plan))
    kinds = {row["variant"]["kind"] for row in rows}
    assert kinds == {"certify", "rotation", "coverage"}
    assert {row["method"] for row in rows} == {"standard", "adversarial", "certified"}
    settings = {row["method"]: row["settings"]["adversarial"] for row in rows}
    assert settings == {"standard": "none", "adversarial": "pgd", "certified": "ibp"}

    cert = [row for row in rows if row["variant"]["kind"] == "certify"]
    for row in cert:
        m = row["metrics"]
        assert m["pgd_flips"] == 0, row  # PGD never changes a certified prediction
        assert 0 <= m["certified"] <= m["clean_accuracy"] and m["certified"] <= m["pgd_accuracy"] + 1e-9, row
        assert m["seconds_per_certificate"] > 0
        if row["variant"]["method"] == "deeppoly":  # never looser than intervals on the same images
            assert m["lost_to_interval"] == 0 and m["certified"] >= m["interval_certified_same"], row

    def share(model: str, method: str, eps: float) -> float:
        return next(r["metrics"]["certified"] for r in cert if r["method"] == model and r["variant"]["method"] == method
                    and r["variant"]["eps"] == eps)

    # interval-bound training certifies where standard training does not
    assert share("certified", "interval", 0.1) > share("standard", "interval", 0.1)
    for row in (r for r in rows if r["variant"]["kind"] == "rotation"):
        assert row["metrics"]["sampled_flips"] == 0 and row["metrics"]["certified"] <= row["metrics"]["clean_accuracy"]
    coverage = {}
    for row in (r for r in rows if r["variant"]["kind"] == "coverage"):
        layers = [v for k, v in row["metrics"].items() if k.startswith("coverage:")]
        assert layers and min(layers) <= row["metrics"]["coverage"] <= max(layers) and 0 <= row["metrics"]["coverage"] <= 100
        v = row["variant"]
        coverage[(row["method"], v["inputs"], v["unit"], v["scale"], v["threshold"])] = row["metrics"]["coverage"]
    assert len(coverage) == 3 * 3 * 3
    for (model, inputs, unit, scale, _threshold), value in coverage.items():
        if unit == "position" and scale:  # above a quarter of a ReLU layer's range implies fired
            assert value <= coverage[(model, inputs, "position", False, 0.0)], (model, inputs)

    table = (tmp_path / "table.md").read_text()
    for title in ("Certified accuracy", "Rotation certificates", "Soundness checks", "Neuron coverage"):
        assert title in table
    assert experiment_of(tmp_path)[0].kind == "verification"
    record = json.loads((tmp_path / "experiment.json").read_text())
    assert record["kind"] == "verification" and record["measured"]["suite"] == "verification"
    assert record["measured"]["plan"]["benchmark"] and not (tmp_path / "verification.json").exists()  # one record file
    assert len(SUITE_TABLES["verification"][1](rows)) == 4

    again = runner.invoke(cli, _args(tmp_path, data_root))  # resumes: nothing left to run, no row added
    assert again.exit_code == 0 and f"0 of {len(rows)} measurements" in again.output
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(rows)

    (tmp_path / "table.md").unlink()
    redraw = runner.invoke(cli, ["bench", "--suite", "verification", "--tables-only", "--out", str(tmp_path)])
    assert redraw.exit_code == 0 and (tmp_path / "table.md").read_text() == table
    report = runner.invoke(cli, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    html = (tmp_path / "r.html").read_text()
    assert "Certified accuracy" in html and "Neuron coverage" in html


def test_verification_suite_refuses_unknown_models_and_settings(tmp_path: Path, data_root: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, _args(tmp_path, data_root, "--methods", "standard,robustest"))
    assert bad.exit_code == 2 and "unknown models ['robustest']" in bad.output
    refused = runner.invoke(cli, _args(tmp_path, data_root, "--set", "msp.epochs=2"))
    assert refused.exit_code == 2 and "sets its own models" in refused.output
    with pytest.raises(InputError, match="bound methods"):
        VerificationPlan(methods=["crown"]).check()
    with pytest.raises(InputError, match="rotations"):
        VerificationPlan(rotations=[0.0]).check()


def test_the_plan_certifies_every_model_at_every_eps_with_both_methods() -> None:
    plan = VerificationPlan()
    cells = plan_cells(plan)
    cert = {(job["model"], job["method"], job["eps"]) for _, job in cells if job["kind"] == "certify"}
    assert cert == {(m, b, e) for m in ("standard", "adversarial", "certified") for b in ("interval", "deeppoly")
                    for e in (0.01, 0.05, 0.1, 0.2, 0.3)}
    rot = {(job["model"], job["theta"], job["splits"]) for _, job in cells if job["kind"] == "rotation"}
    assert {(t, s) for _, t, s in rot} == {(5.0, 10), (10.0, 20), (15.0, 30)}  # one angle split per degree
    assert len({c.key() for c, _ in cells}) == len(cells)  # every measurement its own cell


def test_merge_refuses_results_of_different_measurement_suites(tmp_path: Path) -> None:
    for name, plan in (("a", "robustness.json"), ("b", "verification.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text("")
        (tmp_path / name / plan).write_text("{}")
    r = CliRunner().invoke(cli, ["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--into", str(tmp_path / "c")])
    assert r.exit_code == 2 and "holds suite verification" in r.output and "holds suite robustness" in r.output
    assert not (tmp_path / "c" / "results.jsonl").exists()


@pytest.mark.parametrize("preset", sorted(VERIFY_MODELS))
def test_every_preset_verifies_networks_the_verifiers_accept(preset: str) -> None:
    # the paper preset's classifier is a Wide-ResNet (refused by the verifiers): its models are LeNets
    for model in VERIFY_MODELS[preset]:
        settings = create("msp", **model_settings(model, preset)).config
        net = classifier_net(settings, {"channels": 1, "size": [28, 28], "classes": 10})
        assert as_layers(net, [0.5], [0.25]), (preset, model)


def test_rows_of_float64_bounds_are_kept_apart_from_the_sound_ones() -> None:
    from oodscope.bench.measured.verification_tables import certified_table, rotation_table, soundness_table

    cells = plan_cells(VerificationPlan())
    assert all(job["bounds"] == "float32" for _, job in cells if job["kind"] in ("certify", "rotation"))

    def row(bounds: str | None, certified: float, kind: str = "certify") -> dict:
        variant = {"kind": kind, "method": "deeppoly", "n": 100}
        variant.update({"eps": 0.01, "pgd_steps": 40, "pgd_restarts": 5} if kind == "certify" else
                       {"theta": 5.0, "splits": 10, "sampled_angles": 61})
        if bounds is not None:
            variant["bounds"] = bounds
        metrics = {"certified": certified, "n_images": 100, "n_certified": int(certified), "seconds_per_certificate": 1.0,
                   "pgd_accuracy": 99.0, "pgd_flips": 0, "seconds_per_image": 1.0, "sampled_flips": 0}
        return {"method": "standard", "variant": variant, "metrics": metrics}

    rows = [row(None, 81.0), row("float32", 80.0), row(None, 65.0, "rotation"), row("float32", 60.0, "rotation")]
    cert = {(r[0], r[1]): r[2] for r in certified_table(rows).rows}
    assert cert[("standard", "deeppoly")] == "80.00" and cert[("standard (float64 bounds)", "deeppoly")] == "81.00"
    assert [r[:2] for r in rotation_table(rows).rows] == [["standard", "60.00"], ["standard (float64 bounds)", "65.00"]]
    assert [r[0] for r in soundness_table(rows).rows] == ["standard", "standard (float64 bounds)"]
