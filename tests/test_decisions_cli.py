"""Decisions with a guarantee from the command line (oodscope.pipeline.decisions, oodscope score /
fit / threshold): conformal p-values in the CSV equal the formula on the model's saved held-out
scores; --alpha, --fdr (Benjamini-Hochberg over the run) and the online rules give the verdicts of
their definitions; an interrupted online run resumes the same rule; a level the calibration cannot
reach is refused with the images it needs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from scipy import stats

from oodscope.cli import cli
from oodscope.data import load as load_data
from oodscope.detectors import load
from oodscope.metrics.conformal import OnlineFDR

torch.set_num_threads(1)

SMOKE = ["--preset", "smoke", "--set", "progress=false", "--threads", "1"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def reference_p(cal: np.ndarray, s: float) -> float:
    return (1 + int(np.sum(cal >= s))) / (len(cal) + 1)


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/<digit>/: scikit-learn's digits 0-5 (labelled by folder); probe/: 30 bright noise images (first
    in file order) then 150 test digits 0-9 (6-9 unseen); cal/: the other test digits 0-5."""
    root = tmp_path_factory.mktemp("digits")
    train, test = load_data("digits", "train"), load_data("digits", "test")
    for i, (img, y) in enumerate(zip(train.images, train.labels)):
        if y < 6:
            (root / "train" / str(y)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0]).save(root / "train" / str(y) / f"{i:04d}.png")
    (root / "probe").mkdir()
    (root / "cal").mkdir()
    noise = np.random.default_rng(0).integers(128, 256, size=(30, 8, 8), dtype=np.uint8)
    for i, img in enumerate(noise):
        Image.fromarray(img).save(root / "probe" / f"a{i:02d}.png")
    for i, (img, y) in enumerate(zip(test.images, test.labels)):
        if i < 150:
            Image.fromarray(img[0]).save(root / "probe" / f"b{i:03d}.png")
        elif y < 6:
            Image.fromarray(img[0]).save(root / "cal" / f"c{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def maha_model(digit_folders: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "maha"
    r = invoke("fit", "--method", "mahalanobis", "--train", str(digit_folders / "train"), "--out", str(out),
               "--alpha", "0.05", *SMOKE)
    assert r.exit_code == 0, r.output
    assert "decision rule: alpha at 0.05" in r.stdout
    return out


@pytest.fixture(scope="module")
def calibrated(maha_model: Path, digit_folders: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model calibrated on the ~270 test digits 0-5 of cal/ (smaller p-values than its 72 held-out
    images give: the online rules' first levels are about q / 20)."""
    import shutil

    model = tmp_path_factory.mktemp("c") / "maha"
    shutil.copytree(maha_model, model)
    r = invoke("threshold", str(model), "--calibration", str(digit_folders / "cal"), "--fdr", "0.1", "--fdr-rule", "lond")
    assert r.exit_code == 0, r.output
    return model


def saved_rule(model: Path) -> dict:
    return json.loads((model / "config.json").read_text())["threshold_rule"]


def test_fit_records_the_rule_and_the_held_out_classes(maha_model: Path) -> None:
    rule = saved_rule(maha_model)
    assert rule["decision"]["rule"] == "alpha" and rule["decision"]["level"] == 0.05
    assert "probability at most 0.05" in rule["decision"]["guarantee"]
    assert len(rule["held_out_classes"]) == len(rule["held_out_scores"]) >= 60
    assert set(rule["held_out_classes"]) <= set(range(6))


def test_score_writes_p_values_of_the_formula_and_alpha_verdicts(maha_model: Path, digit_folders: Path) -> None:
    r = invoke("score", str(maha_model), str(digit_folders / "probe"))
    assert r.exit_code == 0, r.output
    rows = rows_of(r.stdout)
    cal = np.array(saved_rule(maha_model)["held_out_scores"])
    assert len(rows) == 180 and list(rows[0]) == ["file", "score", "p_value", "verdict", "error"]
    p = np.array([float(x["p_value"]) for x in rows])
    np.testing.assert_array_equal(p, [reference_p(cal, float(x["score"])) for x in rows])
    assert [x["verdict"] for x in rows] == ["ood" if v <= 0.05 else "in" for v in p]
    # the rule saved with the model applies by default; --alpha on the command line overrides it
    other = rows_of(invoke("score", str(maha_model), str(digit_folders / "probe"), "--alpha", "0.2").stdout)
    assert [x["verdict"] for x in other] == ["ood" if v <= 0.2 else "in" for v in p]
    assert sum(x["verdict"] == "ood" for x in other) > sum(x["verdict"] == "ood" for x in rows)


def test_fdr_is_benjamini_hochberg_over_the_whole_run(maha_model: Path, digit_folders: Path, tmp_path: Path) -> None:
    args = ["score", str(maha_model), str(digit_folders / "probe"), "--fdr", "0.1", "--batch", "40"]
    rows = rows_of(invoke(*args).stdout)
    p = np.array([float(x["p_value"]) for x in rows])
    want = stats.false_discovery_control(p, method="bh") <= 0.1
    assert [x["verdict"] == "ood" for x in rows] == list(want) and 0 < want.sum() < len(p)
    out = tmp_path / "s.csv"
    r = invoke(*args, "--out", str(out), "--no-progress")
    assert r.exit_code == 0, r.output
    assert rows_of(out.read_text()) == rows  # the same verdicts when written batch by batch, then decided
    record = json.loads((tmp_path / "s.csv.decision.json").read_text())
    assert record["decision"]["rule"] == "bh" and record["rows"] == 180 and record["calibration"]["n"] == len(
        saved_rule(maha_model)["held_out_scores"])


@pytest.mark.parametrize("rule", ["lond", "lord++"])
def test_an_online_rule_resumes_where_it_stopped(rule: str, calibrated: Path, digit_folders: Path, tmp_path: Path) -> None:
    probe = digit_folders / "probe"
    args = ["score", str(calibrated), str(probe), "--fdr", "0.2", "--fdr-rule", rule, "--batch", "25", "--no-progress"]
    whole = tmp_path / "whole.csv"
    assert invoke(*args, "--out", str(whole)).exit_code == 0
    rows = rows_of(whole.read_text())
    p = np.array([float(x["p_value"]) for x in rows])
    want = OnlineFDR(0.2, rule).test_many(p)
    assert [x["verdict"] == "ood" for x in rows] == list(want) and want.sum() > 0
    # a run killed after the CSV got 110 rows but before the state of the last batches was saved
    # (saved at 75 rows; a partial line at the end): the resumed run replays rows 76..110 and goes on
    cut = tmp_path / "cut.csv"
    text = whole.read_text().splitlines(keepends=True)
    cut.write_text("".join(text[:111]) + text[111][:9])
    state = OnlineFDR(0.2, rule)
    state.test_many(p[:75])
    record = json.loads((tmp_path / "whole.csv.decision.json").read_text())
    record.update(rows=75, online=state.state())
    (tmp_path / "cut.csv.decision.json").write_text(json.dumps(record))
    r = invoke(*args, "--out", str(cut))
    assert r.exit_code == 0, r.output
    assert "110 already in the CSV" in r.stderr
    assert rows_of(cut.read_text()) == rows
    assert json.loads((tmp_path / "cut.csv.decision.json").read_text())["online"] == \
        json.loads((tmp_path / "whole.csv.decision.json").read_text())["online"]
    # another rule on the same CSV is refused: its verdicts would mix two rules
    other = CliRunner().invoke(cli, [*args[:3], "--alpha", "0.1", "--out", str(cut)])
    assert other.exit_code == 2 and "cannot be resumed" in other.stderr


def test_class_conditional_p_values_use_the_predicted_class(maha_model: Path, digit_folders: Path) -> None:
    rows = rows_of(invoke("score", str(maha_model), str(digit_folders / "probe"), "--alpha", "0.2",
                          "--class-conditional").stdout)
    rule = saved_rule(maha_model)
    cal, cal_k = np.array(rule["held_out_scores"]), np.array(rule["held_out_classes"])
    det = load(maha_model)
    images = np.stack([np.asarray(Image.open(r["file"]))[None] for r in rows])
    k = det.outputs(images)["logits"].argmax(axis=1)
    want = [reference_p(cal[cal_k == c], float(r["score"])) if (cal_k == c).any() else 1.0 for r, c in zip(rows, k)]
    np.testing.assert_array_equal([float(r["p_value"]) for r in rows], want)


def test_levels_the_calibration_cannot_reach_are_refused(maha_model: Path, digit_folders: Path) -> None:
    n = len(saved_rule(maha_model)["held_out_scores"])
    r = CliRunner().invoke(cli, ["score", str(maha_model), str(digit_folders / "probe"), "--alpha", "0.001"])
    assert r.exit_code == 2 and "needs at least 999 calibration images" in r.stderr and f"there are {n}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = CliRunner().invoke(cli, ["score", str(maha_model), str(digit_folders / "probe"), "--alpha", "0.1", "--fdr", "0.1"])
    assert r.exit_code == 2 and "not both" in r.stderr
    # an online rule's first level is q gamma_1 (~ q / 19): 72 held-out images can never reach lond's at q = 0.1
    r = CliRunner().invoke(cli, ["score", str(maha_model), str(digit_folders / "probe"), "--fdr", "0.1", "--fdr-rule", "lond"])
    assert r.exit_code == 2 and "needs at least 186 calibration images" in r.stderr and "never flag" in r.stderr


def test_threshold_calibrates_on_a_folder_and_records_an_online_rule(maha_model: Path, calibrated: Path,
                                                                      digit_folders: Path) -> None:
    old, new = saved_rule(maha_model), saved_rule(calibrated)
    n = len(list((digit_folders / "cal").iterdir()))
    assert new["calibration"]["source"] == f"folder {digit_folders / 'cal'}" and len(new["calibration"]["scores"]) == n
    assert new["threshold"] == old["threshold"] and new["decision"]["rule"] == "lond" and new["decision"]["level"] == 0.1
    rows = rows_of(invoke("score", str(calibrated), str(digit_folders / "cal")).stdout)  # p-values now against cal/
    cal = np.array(new["calibration"]["scores"])
    np.testing.assert_array_equal([float(x["p_value"]) for x in rows], [reference_p(cal, float(x["score"])) for x in rows])
