"""The engine of ``oodscope score`` and ``oodscope serve``: a float32 model whose score is one graph
runs that graph under onnxruntime, with the numbers of its exported file and, within float32
rounding, of the library; other models, and ``--engine torch``, stay on torch."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from oodscope.cli import cli  # noqa: E402
from oodscope.data import load  # noqa: E402
from oodscope.detectors import Detector, create  # noqa: E402
from oodscope.errors import InputError  # noqa: E402
from oodscope.export import OnnxScorer, export_onnx, load_scorer  # noqa: E402
from oodscope.export.engine import GraphScorer, with_engine  # noqa: E402
from oodscope.pipeline import fit_with_threshold  # noqa: E402

SMOKE = {"epochs": 1, "progress": False}


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    train, test = load("digits", "train"), load("digits", "test")
    return {"train": train.subset(train.labels == 3), "test": test.images[:120]}


@pytest.fixture(scope="module")
def geom_dir(digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = fit_with_threshold("geom", digits["train"], preset="smoke", overrides=SMOKE)
    return report.detector.save(tmp_path_factory.mktemp("engine") / "geom")


def test_auto_runs_the_exported_graph_and_agrees_with_the_library(geom_dir: Path, digits, tmp_path: Path) -> None:
    det = load_scorer(geom_dir, engine="torch")
    fast = load_scorer(geom_dir, threads=1)
    assert isinstance(det, Detector) and isinstance(fast, GraphScorer) and fast.engine == "onnxruntime"
    assert fast.precision == "float32" and fast.threshold == det.threshold and fast.method == "geom"
    export_onnx(det, tmp_path / "m.onnx")
    x = digits["test"]
    got, lib = fast.score(x), det.score(x)
    np.testing.assert_array_equal(got, OnnxScorer(tmp_path / "m.onnx", threads=1).score(x))  # the file's numbers
    np.testing.assert_allclose(got, lib, rtol=1e-5, atol=1e-5 * np.abs(lib).max())
    s = np.sort(lib)
    for t in (s[1:] + s[:-1])[np.diff(s) > 2e-5 * np.abs(lib).max()] / 2:
        assert np.array_equal(got > t, lib > t)
    with pytest.raises(InputError, match="images to score"):  # the detector's own checks and messages
        fast.score(np.zeros((2, 3, 8, 8), np.uint8))
    np.testing.assert_array_equal(fast.predict(x), got > fast.threshold)  # verdicts from the engine's scores
    assert fast.predict(x).any() and not fast.predict(x).all()


def test_models_the_graph_cannot_run_stay_on_torch(geom_dir: Path, digits) -> None:
    bf16 = create("geom", **SMOKE, transforms="rot4", widths=[8, 8, 8], precision="bfloat16")
    bf16.fit(digits["train"], upstream=load_scorer(geom_dir, engine="torch"))
    assert with_engine(bf16) is bf16
    with pytest.raises(InputError, match="cannot be scored with onnxruntime: it scores in bfloat16"):
        with_engine(bf16, "onnxruntime")
    maha = create("ae", epochs=1, progress=False).fit(digits["train"])
    assert with_engine(maha) is maha
    with pytest.raises(InputError, match="not one network graph"):
        with_engine(maha, "onnxruntime")
    with pytest.raises(InputError, match="engine must be one of"):
        with_engine(maha, "tensorrt")


def test_score_command_with_either_engine(geom_dir: Path, digits, tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, a in enumerate(digits["test"][:20]):
        Image.fromarray(a[0]).save(folder / f"{i:02d}.png")
    scores = {}
    for engine in ("auto", "torch"):
        out = tmp_path / f"{engine}.csv"
        r = CliRunner().invoke(cli, ["score", str(geom_dir), str(folder), "--out", str(out), "--no-progress",
                                     "--engine", engine, "--threads", "1"])
        assert r.exit_code == 0, r.output
        with out.open() as f:
            scores[engine] = np.array([float(row["score"]) for row in sorted(csv.DictReader(f), key=lambda r: r["file"])])
    np.testing.assert_allclose(scores["auto"], scores["torch"], rtol=1e-5, atol=1e-5 * np.abs(scores["torch"]).max())
