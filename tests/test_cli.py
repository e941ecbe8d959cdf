"""Tests of the oodscope command line: demo, bench, fit, score, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import on_ci

from oodscope.bench.sanity.demo import demo_methods
from oodscope.cli import cli
from oodscope.bench.options import parse_budgets, parse_int_list, parse_settings, parse_size, parse_variants
from oodscope.errors import InputError

torch.set_num_threads(1)

SMOKE = ["--preset", "smoke", "--set", "progress=false", "--threads", "1"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/: 20 gray 16x16 images of a bright vertical bar; outliers/: 8 noise images;
    probe/: 3 bars and 3 RGB noise images of another size."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for name in ("train", "outliers", "probe"):
        (root / name).mkdir()
    for i in range(20):
        a = np.zeros((16, 16), np.uint8)
        a[3:13, 6 + i % 3 : 9 + i % 3] = 180 + i
        Image.fromarray(a).save(root / "train" / f"bar{i:02d}.png")
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "outliers" / f"n{i}.png")
    for i in range(3):
        a = np.zeros((16, 16), np.uint8)
        a[3:13, 7:10] = 200
        Image.fromarray(a).save(root / "probe" / f"a_bar{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "probe" / f"b_noise{i}.jpg")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return root


@pytest.fixture(scope="module")
def model(folders: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "layers-model"
    r = invoke("fit", "--method", "layers", "--train", str(folders / "train"), "--outliers", str(folders / "outliers"),
               "--out", str(out), "--accept", "0.9", "--set", "knn_weight=0", *SMOKE)
    # no kNN part here: standardised on 2 held-out images whose distances nearly coincide, it magnifies
    # the float rounding that differs with the batch an image is in to ~1e-2 (on MNIST, 540 held-out
    # images, scores stay within 2e-5 whatever the batch); tests/test_contract.py exports it
    assert r.exit_code == 0, r.output
    assert "threshold" in r.stdout and "2 held-out" in r.stdout
    return out


def assert_same_rows(a: str, b: str) -> None:
    """Two score CSVs hold the same files, verdicts and errors in the same order, and scores equal
    up to float rounding (a network's result may differ in the last bits with the batch it is in)."""
    ra, rb = list(csv.DictReader(io.StringIO(a))), list(csv.DictReader(io.StringIO(b)))
    assert [(x["file"], x["verdict"], x["error"]) for x in ra] == [(x["file"], x["verdict"], x["error"]) for x in rb]
    sa, sb = ([float(x["score"]) for x in r if x["score"]] for r in (ra, rb))
    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)


# -- parsing ----------------------------------------------------------------------------------------
def test_parsing_helpers() -> None:
    assert parse_int_list("0-9") == list(range(10))
    assert parse_int_list("0,8") == [0, 8]
    assert parse_int_list("2") == [2]
    assert parse_int_list("7,0-2,2") == [0, 1, 2, 7]
    for bad in ("a", "3-1", "", "1,,2", "-1"):
        with pytest.raises(InputError):
            parse_int_list(bad, "--classes")
    assert parse_budgets("16,all") == [16, "all"]
    with pytest.raises(InputError):
        parse_budgets("0")
    assert parse_settings(["epochs=3", "widths=[8, 8, 8]", "backbone=small", "taps=z3+z4", "amp=false"]) == {
        "epochs": 3, "widths": [8, 8, 8], "backbone": "small", "taps": ["z3", "z4"], "amp": False}
    assert parse_variants(["taps=z4", "taps=z1+z2,g_steps=10", "widths=[8,8,8],epochs=1"], ["layers"]) == [
        {"taps": ["z4"]}, {"taps": ["z1", "z2"], "g_steps": 10}, {"widths": [8, 8, 8], "epochs": 1}]
    assert parse_variants([]) is None
    assert parse_size("28x32") == (28, 32) and parse_size("8") == (8, 8)


# -- fit and score ------------------------------------------------------------------------------------
def test_fit_saves_threshold(model: Path) -> None:
    meta = json.loads((model / "config.json").read_text())
    assert meta["method"] == "layers" and isinstance(meta["threshold"], float)
    assert meta["fitted"]["size"] == [16, 16] and meta["fitted"]["channels"] == 1
    assert meta["config"]["g_steps"] == 5 and meta["config"]["seed"] == 0


def test_score_csv_and_verdicts(model: Path, folders: Path, tmp_path: Path) -> None:
    threshold = json.loads((model / "config.json").read_text())["threshold"]
    r = invoke("score", str(model), str(folders / "probe"), str(folders / "train" / "bar00.png"))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["file", "score", "p_value", "verdict", "error"]
    assert len(rows) == 7  # 6 probe images (converted to 16x16 gray) + 1 file
    assert rows[0]["file"].endswith("a_bar0.png") and rows[-1]["file"].endswith("bar00.png")
    for row in rows:
        assert row["verdict"] == ("ood" if float(row["score"]) > threshold else "in")
    noise = [float(r["score"]) for r in rows if "noise" in r["file"]]
    bars = [float(r["score"]) for r in rows if "bar" in r["file"]]
    assert min(noise) > max(bars)  # sanity: the detector separates what it was trained to separate
    out = tmp_path / "scores.csv"
    r2 = invoke("score", str(model), str(folders / "probe"), str(folders / "train" / "bar00.png"), "--out", str(out),
                "--batch", "2")
    assert r2.exit_code == 0 and r2.stdout == ""
    assert_same_rows(out.read_text(), r.stdout)  # batches of 2 give the rows of one batch


def test_score_skips_unreadable_images_unless_strict(model: Path, folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    r = invoke("score", str(model), str(folders / "probe"), str(folders / "broken.png"), "--out", str(out), "--batch", "4")
    assert r.exit_code == 0, r.output
    assert "skipped 1 file" in r.stderr and "broken.png" in r.stderr and "cannot read image" in r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 7 and [x["verdict"] for x in rows].count("error") == 1
    bad = rows[-1]
    assert bad["file"].endswith("broken.png") and bad["score"] == "" and "cannot read image" in bad["error"]
    assert all(x["score"] and not x["error"] for x in rows[:-1])

    strict = tmp_path / "strict.csv"
    r = invoke("score", str(model), str(folders / "broken.png"), str(folders / "probe"), "--out", str(strict), "--strict",
               "--no-progress")
    assert_one_line_error(r, "broken.png", "cannot read image")
    assert strict.read_text() == "file,score,p_value,verdict,error\n"  # nothing scored, nothing half-written


def test_score_resumes_after_a_kill(model: Path, folders: Path, tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    args = [str(model), str(folders / "probe"), str(folders / "train"), "--batch", "3", "--no-progress"]
    assert invoke("score", *args, "--out", str(full)).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 1 + 26
    cut = tmp_path / "cut.csv"  # as a kill leaves it: 10 whole rows and half of the 11th
    cut.write_text("".join(lines[:11]) + lines[11][:9])
    r = invoke("score", *args, "--out", str(cut))
    assert r.exit_code == 0, r.output
    assert "10 already in the CSV" in r.stderr
    assert_same_rows(cut.read_text(), full.read_text())  # no row lost, none duplicated
    other = tmp_path / "other.csv"
    other.write_text("".join(lines[:1] + lines[2:5]))
    assert_one_line_error(invoke("score", *args, "--out", str(other)), "other.csv", "row 1", "other files")
    notcsv = tmp_path / "notes.csv"
    notcsv.write_text("hello\n")
    assert_one_line_error(invoke("score", *args, "--out", str(notcsv)), "notes.csv", "not a scores CSV")
    assert notcsv.read_text() == "hello\n"


def test_threshold_rules_and_rethreshold(model: Path, folders: Path, tmp_path: Path) -> None:
    import shutil

    meta = json.loads((model / "config.json").read_text())
    rule = meta["threshold_rule"]
    assert rule["rule"] == "accept" and rule["target"] == 0.9 and rule["held_out"]["n"] == 2
    assert rule["threshold"] == meta["threshold"] and len(rule["held_out_scores"]) == 2
    assert np.mean(np.array(rule["held_out_scores"]) <= meta["threshold"]) == rule["held_out"]["accepted"] >= 0.9

    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    r = invoke("threshold", str(copy), "--accept", "0.5")
    assert r.exit_code == 0, r.output
    new = json.loads((copy / "config.json").read_text())
    assert new["threshold_rule"]["target"] == 0.5 and new["threshold_rule"]["held_out"]["accepted"] >= 0.5
    held = np.array(rule["held_out_scores"])
    boundary = held[held <= new["threshold"]].max()  # the last held-out score accepted, kept clear of rounding
    assert 0 < new["threshold"] - boundary <= 1.000001e-4 * np.abs(held).max() and not np.any(
        (held > boundary) & (held <= new["threshold"]))
    assert new["weights_sha256"] == meta["weights_sha256"]  # the networks are untouched

    r = invoke("threshold", str(copy), "--fpr", "0", "--val-outliers", str(folders / "outliers"))
    assert r.exit_code == 0, r.output
    new = json.loads((copy / "config.json").read_text())["threshold_rule"]
    assert new["rule"] == "fpr" and new["outliers"] == {"n": 8, "accepted": 0.0} and "validation outliers" in r.stdout
    scored = list(csv.DictReader(io.StringIO(invoke("score", str(copy), str(folders / "outliers")).stdout)))
    assert [x["verdict"] for x in scored] == ["ood"] * 8  # the rule holds when the model scores them again

    assert_one_line_error(invoke("threshold", str(copy), "--fpr", "0.1"), "--val-outliers")
    assert_one_line_error(invoke("threshold", str(copy), "--accept", "0.9", "--fpr", "0.1"), "not both")
    assert_one_line_error(invoke("threshold", str(copy), "--accept", "1.5"), "--accept")
    old = tmp_path / "old"  # a model saved before thresholds kept their held-out scores
    shutil.copytree(model, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["threshold_rule"]
    (old / "config.json").write_text(json.dumps(cfg))
    assert_one_line_error(invoke("threshold", str(old), "--accept", "0.9"), "no held-out", "refitting")


def test_fit_with_fpr_rule(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "fpr"
    r = invoke("fit", "--method", "geom", "--train", str(folders / "train"), "--out", str(out), "--fpr", "0.25",
               "--val-outliers", str(folders / "outliers"), *SMOKE)
    assert r.exit_code == 0, r.output
    rule = json.loads((out / "config.json").read_text())["threshold_rule"]
    assert rule["rule"] == "fpr" and rule["target"] == 0.25 and rule["outliers"]["n"] == 8
    assert rule["outliers"]["accepted"] <= 0.25
    assert_one_line_error(invoke("fit", "--method", "geom", "--train", str(folders / "train"), "--out", str(tmp_path / "x"),
                                 "--fpr", "0.1", *SMOKE), "--val-outliers")


def test_export_onnx_and_score_with_it(folders: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model, onnx_file = tmp_path / "m", tmp_path / "m.onnx"
    r = invoke("fit", "--method", "layers", "--train", str(folders / "train"), "--outliers", str(folders / "outliers"),
               "--out", str(model), *SMOKE, "--set", "amp=false",  # float32 scoring, as the ONNX graph
               "--set", "holdout=0.3")  # 6 held-out images, not 2: a spread the standardised kNN part can be read on
    assert r.exit_code == 0, r.output
    r = invoke("export", str(model), "--format", "onnx", "--out", str(onnx_file))
    assert r.exit_code == 0, r.output
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    cfg = json.loads((model / "config.json").read_text())
    assert side["method"] == "layers" and side["image_size"] == [16, 16] and side["channels"] == 1
    assert side["threshold"] == cfg["threshold"] and side["weights_sha256"] == cfg["weights_sha256"]
    # the held-out scores travel with the export: the ONNX file gives the same p-values
    assert side["threshold_rule"]["rule"] == "accept"
    assert side["threshold_rule"]["held_out_scores"] == cfg["threshold_rule"]["held_out_scores"]
    paths = [str(folders / "probe"), str(folders / "train")]
    torch_rows = list(csv.DictReader(io.StringIO(invoke("score", str(model), *paths).stdout)))
    onnx_rows = list(csv.DictReader(io.StringIO(invoke("score", str(onnx_file), *paths).stdout)))
    assert [x["file"] for x in onnx_rows] == [x["file"] for x in torch_rows] and len(onnx_rows) == 26
    a, b = (np.array([float(x["score"]) for x in rows]) for rows in (onnx_rows, torch_rows))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    clear = np.abs(b - cfg["threshold"]) > 1e-4 * np.abs(b).max()  # a held-out image sits on the threshold itself
    assert [x["verdict"] for x, c in zip(onnx_rows, clear) if c] == [x["verdict"] for x, c in zip(torch_rows, clear) if c]
    held = np.array(cfg["threshold_rule"]["held_out_scores"])  # p-values agree where no held-out score is as close
    apart = np.abs(b[:, None] - held[None, :]).min(axis=1) > 1e-4 * np.abs(b).max()
    assert apart.sum() >= 10
    assert [x["p_value"] for x, c in zip(onnx_rows, apart) if c] == [x["p_value"] for x, c in zip(torch_rows, apart) if c]

    # a program that only scores needs NumPy and onnxruntime: torch cannot even be imported here
    probe = ("import sys, json, numpy as np; sys.modules['torch'] = None; "
             "from oodscope.export.onnx_runtime import OnnxScorer; "
             "print(json.dumps(OnnxScorer(sys.argv[1]).score(np.load(sys.argv[2])).tolist()))")
    images = np.random.default_rng(3).integers(0, 256, (4, 1, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    out = subprocess.run([sys.executable, "-c", probe, str(onnx_file), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, check=True)
    from oodscope.detectors import load as load_model

    np.testing.assert_allclose(json.loads(out.stdout), load_model(model).score(images), rtol=1e-4, atol=1e-4 * np.abs(b).max())

    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    assert_one_line_error(invoke("score", str(onnx_file), *paths), "m.onnx", "checksum")
    knn = tmp_path / "knn"
    pytest.importorskip("pyod")
    assert invoke("fit", "--method", "knn", "--train", str(folders / "train"), "--out", str(knn)).exit_code == 0
    assert_one_line_error(invoke("export", str(knn), "--out", str(tmp_path / "k.onnx")), "knn", "cannot be exported")
    assert not (tmp_path / "k.onnx").exists()


def test_score_tampered_model(model: Path, folders: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(model, copy)
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    r = invoke("score", str(copy), str(folders / "probe"))
    assert_one_line_error(r, "checksum", "weights.safetensors")


def test_score_missing_things(model: Path, folders: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke("score", str(tmp_path / "nomodel"), str(folders / "probe")), "not a saved oodscope model")
    assert_one_line_error(invoke("score", str(model), str(tmp_path / "nothing.png")), "nothing.png")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("score", str(model), str(tmp_path / "empty")), "no images")


def test_fit_errors(folders: Path, tmp_path: Path) -> None:
    train = str(folders / "train")
    assert_one_line_error(invoke("fit", "--method", "geom", "--train", train, "--out", str(tmp_path / "m"),
                                 "--channels", "2", *SMOKE), "--channels", "1", "3")
    assert_one_line_error(invoke("fit", "--method", "layers", "--train", train, "--out", str(tmp_path / "m"), *SMOKE),
                          "outlier")
    assert_one_line_error(invoke("fit", "--train", str(tmp_path / "missing"), "--out", str(tmp_path / "m"), *SMOKE),
                          "missing", "not a directory")
    assert_one_line_error(invoke("fit", "--method", "geom", "--train", train, "--out", str(tmp_path / "m"),
                                 "--set", "epoch=1", *SMOKE), "epoch")
    assert not (tmp_path / "m").exists()


def test_fit_geom_without_outliers_rgb(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "geom"
    r = invoke("fit", "--method", "geom", "--train", str(folders / "train"), "--out", str(out), "--channels", "3",
               "--size", "12x12", *SMOKE)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["fitted"]["channels"] == 3 and meta["fitted"]["size"] == [12, 12]
    r = invoke("score", str(out), str(folders / "probe"))
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 7


# -- bench -----------------------------------------------------------------------------------------------
def test_bench_command(tmp_path: Path) -> None:
    out = tmp_path / "b"
    args = ["bench", "--dataset", "digits", "--oe", "digits", "--classes", "4", "--methods", "geom",
            "--n-oe", "2", "--out", str(out), "--no-progress", *SMOKE]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(x["method"], x["protocol_fields"]) for x in rows] == [
        ("geom", {"id_class": 4, "n_oe": 2, "oe_classes": "all", "oe_dataset": "digits"})]
    assert "| 4 |" in r.stdout and "| mean |" in r.stdout
    run = json.loads((out / "experiment.json").read_text())["grid"]  # the one record file
    assert run["config"]["protocol"]["classes"] == [4] and run["settings"]["geom"]["epochs"] == 1
    assert not (out / "run.json").exists()
    r = invoke(*args)
    assert r.exit_code == 0 and "already finished" in r.stderr


BAD_BENCH_OPTIONS = [
    (["--classes", "a-b"], ["--classes"]),
    (["--classes", "5-2"], ["--classes", "5-2"]),
    (["--classes", "12"], ["0..9"]),
    (["--seeds", "x"], ["--seeds"]),
    (["--methods", "geom,nope"], ["unknown method 'nope'"]),
    (["--methods", ","], ["--methods"]),
    (["--n-oe", "-3"], ["--n-oe"]),
    (["--n-oe", "0"], ["--n-oe"]),
    (["--oe-classes", "zero"], ["--oe-classes"]),
    (["--dataset", "nosuchset"], ["nosuchset"]),
    (["--set", "backbone=foo"], ["'backbone' must be one of small, wrn"]),
    (["--set", "epochs=many"], ["'epochs' must be a int"]),
    (["--set", "epochs"], ["--set", "key=value"]),
    (["--set", "=3"], ["--set", "key=value"]),
    (["--set", "epoch=1"], ["['epoch']", "not known"]),
    (["--set", "transforms=rot5"], ["'transforms' must be one of"]),
    (["--variant", "taps"], ["--variant", "key=value"]),
    (["--variant", "nosuch=1"], ["variant settings ['nosuch']"]),
    (["--variant", "taps=z9"], ["taps must be a non-empty subset"]),
    (["--preset", "fast"], ["--preset", "fast"]),
    (["--protocol", "nope"], ["--protocol", "nope"]),
    (["--threads", "0"], ["--threads"]),
    (["--frobnicate"], ["--frobnicate"]),
    (["--methods", "msp"], ["msp", "multi-class"]),
    (["--protocol", "split-mnist", "--dataset", "mnist"], ["--dataset does not apply"]),
    (["--protocol", "split-mnist", "--classes", "0"], ["--classes does not apply"]),
    (["--protocol", "split-mnist", "--oe", "mnist"], ["share", "--oe"]),
    (["--protocol", "mnist-vs-letters"], ["name one with --oe"]),
]


@pytest.mark.parametrize("extra, fragments", BAD_BENCH_OPTIONS, ids=[" ".join(a) for a, _ in BAD_BENCH_OPTIONS])
def test_every_wrong_bench_option_is_one_line(tmp_path: Path, extra: list[str], fragments: list[str]) -> None:
    """Each wrong value: exit status 2, one line on stderr naming it, no traceback, nothing written."""
    out = tmp_path / "b"
    base = ["bench", "--out", str(out), "--no-progress", "--preset", "smoke", "--threads", "1"]
    if "--protocol" not in extra:  # one-class on the bundled digits unless the case says otherwise
        base += ["--oe", "digits"] + ([] if "--dataset" in extra else ["--dataset", "digits"])
    assert_one_line_error(invoke(*base, *extra), *fragments)
    assert not (out / "results.jsonl").exists()


def test_other_wrong_options_are_one_line(folders: Path, tmp_path: Path) -> None:
    train = ["fit", "--method", "geom", "--train", str(folders / "train"), "--out", str(tmp_path / "m"), *SMOKE]
    assert_one_line_error(invoke(*train, "--accept", "2"), "--accept")
    assert_one_line_error(invoke(*train, "--size", "0x3"), "--size")
    assert_one_line_error(invoke(*train, "--set", "backbone=foo"), "'backbone' must be one of small, wrn")
    assert_one_line_error(invoke("fit", "--method", "nope", "--train", "x", "--out", "y"), "--method", "nope")
    assert_one_line_error(invoke("fit", "--method", "msp", "--train", str(folders / "train"), "--out",
                                 str(tmp_path / "m"), *SMOKE), "msp", "sub-folder per class")
    assert_one_line_error(invoke("score"), "Missing argument")
    assert_one_line_error(invoke("report"), "Missing argument")
    assert_one_line_error(invoke("nosuchcommand"), "nosuchcommand")
    assert_one_line_error(invoke("bench", "--suite", "table9", "--out", str(tmp_path / "x")), "--suite", "table9")
    assert not (tmp_path / "m").exists()


def test_a_method_without_its_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oodscope.detectors.base import Requires
    from oodscope.detectors.knn import KNNDetector

    monkeypatch.setattr(KNNDetector, "requires", Requires(inputs="features", package="no_such_pyod", extra="peers"))
    r = invoke("bench", "--dataset", "digits", "--oe", "digits", "--methods", "knn", "--out", str(tmp_path / "b"),
               "--no-progress")
    assert_one_line_error(r, "knn needs the package 'no_such_pyod'", "pip install 'oodscope[peers]'")
    assert "knn" not in demo_methods()


# -- the real console script ------------------------------------------------------------------------------
def test_demo_console_script() -> None:
    exe = Path(sys.executable).with_name("oodscope")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(exe), "demo", "--classes", "0", "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "(c+1) % 10" in out and "removed from the test set" in out
    header = next(line for line in out.splitlines() if line.startswith("class"))
    methods = demo_methods()
    assert header.split()[1:] == methods and methods[:4] == ["geom", "geom+", "bce", "layers"]
    assert "msp" not in methods  # it needs class labels
    if on_ci():  # CI installs the peers extra
        assert {"knn", "iforest", "ocsvm", "ecod"} <= set(methods)
    for label in ("0", "mean"):
        line = next(x for x in out.splitlines() if x.split() and x.split()[0] == label)
        values = [float(v) for v in line.split()[1:]]
        assert len(values) == len(methods) and all(0 <= v <= 100 for v in values), line
    assert re.search(r"finished in \d+ s", out)


def test_console_script_error_exit_status(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("oodscope")
    done = subprocess.run([str(exe), "score", str(tmp_path / "nomodel"), str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1


def test_progress_in_a_log_is_a_few_lines(folders: Path, tmp_path: Path) -> None:
    """With stderr sent to a file (not a terminal), training progress is a handful of whole lines,
    not one carriage-return update per step."""
    exe = Path(sys.executable).with_name("oodscope")
    log = tmp_path / "fit.log"
    with open(log, "w") as f:
        done = subprocess.run([str(exe), "fit", "--method", "geom", "--train", str(folders / "train"), "--out",
                               str(tmp_path / "m"), "--preset", "smoke", "--set", "epochs=40", "--threads", "1"],
                              stderr=f, stdout=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0
    text = log.read_text()
    assert "\r" not in text
    lines = [x for x in text.splitlines() if x.startswith("geom: training f")]
    assert [x.split(": ", 2)[2].split(" ")[0] for x in lines] == ["started,", "25%", "50%", "75%", "done,"]
    assert "loss=" in lines[-1]
