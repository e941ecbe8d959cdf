"""The contract every registered detector follows, checked on each of them.

A new detector is covered by registering it: tiny data (scikit-learn's 8x8 digits 0 and 1 as
in-distribution, 16 images of digit 7 as known outliers, uniform noise as an obvious OOD set),
its ``demo`` preset, and what it declares it needs (outliers, labels, an upstream network).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import need

from oodscope.data import load
from oodscope.detectors import Detector, create, load as load_model, registry, settings_for
from oodscope.detectors.base import PRESET_NAMES
from oodscope.errors import InputError, ModelFileError
from oodscope.metrics import auroc

torch.set_num_threads(1)
METHODS = list(registry())


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    train, test = load("digits", "train"), load("digits", "test")
    test_id = test.images[np.isin(test.labels, [0, 1])]
    return {
        "train": train.subset(np.isin(train.labels, [0, 1])),  # ImageSet: its labels serve detectors that need them
        "outliers": train.images[train.labels == 7][:16],
        "validation": test.subset(np.isin(test.labels, [0, 1])),  # for detectors that require labelled validation images
        "test": test_id,
        "noise": np.random.default_rng(0).integers(0, 256, test_id.shape, dtype=np.uint8),
    }


def settings(method: str) -> dict[str, Any]:
    s = settings_for(method, "demo")
    if "progress" in registry()[method].defaults:
        s["progress"] = False
    return s


def fit(method: str, data: dict[str, Any], **kw: Any) -> Detector:
    det = create(method, **settings(method))
    if det.requires.validation:
        kw.setdefault("validation", data["validation"])
    return det.fit(data["train"], data["outliers"] if det.requires.outliers else None, **kw)


@pytest.fixture(scope="module", params=METHODS)
def fitted(request: pytest.FixtureRequest, data: dict[str, Any]) -> Detector:
    need(registry()[request.param])
    return fit(request.param, data)


def test_declarations(fitted: Detector) -> None:
    cls = type(fitted)
    assert set(cls.presets) == set(PRESET_NAMES), "presets cpu, paper, smoke and demo live beside the detector"
    doc = importlib.import_module(cls.__module__).__doc__ or ""
    assert re.search(r"\b(19|20)\d\d\b", doc), "the module docstring cites the paper (authors, year)"
    assert cls.requires.inputs in ("images", "features") and cls.requires.describe()


def test_scores_higher_for_an_obvious_ood_set(fitted: Detector, data: dict[str, Any]) -> None:
    s_id, s_ood = fitted.score(data["test"]), fitted.score(data["noise"])
    assert s_id.dtype == np.float64 and s_id.shape == (len(data["test"]),) and np.isfinite(s_id).all()
    is_ood = np.r_[np.zeros(len(s_id), bool), np.ones(len(s_ood), bool)]
    assert auroc(np.r_[s_id, s_ood], is_ood) > 0.7


def test_outputs(fitted: Detector, data: dict[str, Any]) -> None:
    out = fitted.outputs(data["test"][:7])
    np.testing.assert_array_equal(out["score"], fitted.score(data["test"][:7]))
    if "logits" in out:  # a detector reading a classifier: one logit per in-distribution class
        assert out["logits"].shape == (7, 2)


def test_save_and_load_give_identical_scores(fitted: Detector, data: dict[str, Any], tmp_path: Path) -> None:
    fitted.set_threshold(0.25)
    path = fitted.save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]
    back = load_model(path)
    assert type(back) is type(fitted) and back.threshold == 0.25 and back.config == fitted.config
    np.testing.assert_array_equal(back.score(data["test"]), fitted.score(data["test"]))


def test_onnx_export_gives_the_librarys_scores_or_names_itself(fitted: Detector, data: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from oodscope.export import OnnxScorer, export_onnx

    assert fitted.precision == "float32"  # the default: what the library computes is what the graph computes
    try:
        export_onnx(fitted, tmp_path / "m.onnx")
    except InputError as e:
        assert fitted.method in str(e) and "cannot be exported" in str(e)
        return
    x = np.concatenate([data["test"], data["noise"]])
    expected = fitted.score(x)  # the library as it is, no patching
    got = OnnxScorer(tmp_path / "m.onnx").score(x)
    # 1e-5 relative to each score, or to the largest score where a score is near zero
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # the same verdicts at every threshold that lies between two of the library's scores
    s = np.sort(expected)
    for t in (s[1:] + s[:-1])[np.diff(s) > 2e-5 * np.abs(expected).max()] / 2:
        assert np.array_equal(got > t, expected > t)


def test_a_bfloat16_model_records_its_precision_and_is_not_exported(fitted: Detector, data: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    if "precision" not in fitted.config:
        assert fitted.precision == "float32"  # no network under autocast: float32 throughout
        return
    if fitted.requires.upstream is None:
        pytest.skip("trains its own network: the opt-in is checked on the detectors sharing one")
    pytest.importorskip("onnx")
    from oodscope.export import export_onnx

    bf16 = create(fitted.method, **{**settings(fitted.method), "precision": "bfloat16"})
    kw = {"validation": data["validation"]} if bf16.requires.validation else {}
    bf16.fit(data["train"], data["outliers"] if bf16.requires.outliers else None, upstream=fitted, **kw)
    assert bf16.precision == "bfloat16" and fitted.precision == "float32"
    assert fitted.upstream.settings["precision"] == "float32"  # the shared network is read, not changed
    bf16.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.precision == "bfloat16"
    np.testing.assert_array_equal(loaded.score(data["test"]), bf16.score(data["test"]))
    with pytest.raises(InputError, match="scores in bfloat16"):
        export_onnx(bf16, tmp_path / "m.onnx")


def test_a_tampered_model_is_refused(fitted: Detector, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    weights = path / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)
    path = fitted.save(tmp_path / "m2")
    meta = json.loads((path / "config.json").read_text())
    meta["format"] = "pickle"
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="not an oodscope-detector config"):
        load_model(path)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 1, 8, 8), np.uint8), "empty"),
    (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN"),
    (np.full((2, 1, 8, 8), 200.0, np.float32), r"\[0, 1\]"),
    (np.zeros((2, 5, 8, 8), np.uint8), "channels"),
    (np.zeros((2, 1, 9, 9), np.uint8), r"8x8|64 features"),
    (np.array([["a"]]), "dtype"),
])
def test_bad_inputs_are_named(fitted: Detector, bad: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        fitted.score(bad)


def test_the_same_seed_gives_the_same_scores(fitted: Detector, data: dict[str, Any]) -> None:
    torch.manual_seed(123)  # whatever ran before
    again = fit(fitted.method, data)
    np.testing.assert_allclose(again.score(data["test"]), fitted.score(data["test"]), rtol=1e-6, atol=1e-7)


def test_a_shared_upstream_gives_the_scores_of_one_trained_alone(fitted: Detector, data: dict[str, Any]) -> None:
    up_cls = fitted.requires.upstream
    if up_cls is None:
        pytest.skip(f"{fitted.method} reads no upstream network")
    x = torch.from_numpy(data["train"].images.astype(np.float32) / 255)
    labels = torch.from_numpy(data["train"].labels) if up_cls.needs_labels else None
    shared = up_cls(**up_cls.settings_from(fitted.config)).fit(x, labels)
    det = fit(fitted.method, data, upstream=shared)
    np.testing.assert_allclose(det.score(data["test"]), fitted.score(data["test"]), rtol=1e-6, atol=1e-7)


def test_requirements_are_enforced(fitted: Detector, data: dict[str, Any]) -> None:
    method, req = fitted.method, fitted.requires
    with pytest.raises(InputError, match="not fitted"):
        create(method).score(data["test"])
    if req.outliers:
        with pytest.raises(InputError, match="outlier"):
            create(method, **settings(method)).fit(data["train"])
    if req.validation:
        with pytest.raises(InputError, match="validation"):
            create(method, **settings(method)).fit(data["train"], data["outliers"] if req.outliers else None)
    if req.labels:
        outliers = data["outliers"] if req.outliers else None
        with pytest.raises(InputError, match="labels"):
            create(method, **settings(method)).fit(data["train"].images, outliers)
        with pytest.raises(InputError, match="2 classes"):
            create(method, **settings(method)).fit(data["train"], outliers, labels=np.zeros(len(data["train"]), np.int64))
    with pytest.raises(InputError, match="unknown settings"):
        create(method, no_such_setting=1)
