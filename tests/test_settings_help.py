"""Every detector declares, as data, a one-line description of each setting, its paper and whether it
exports to ONNX; registration refuses an undescribed setting; ``create`` takes a preset."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from oodscope.detectors import Detector, create, registry, settings_for
from oodscope.detectors.base import PRESET_NAMES, Requires
from oodscope.detectors.registry import register
from oodscope.errors import InputError

torch.set_num_threads(1)
METHODS = list(registry())


@pytest.mark.parametrize("method", METHODS)
def test_every_setting_has_a_one_line_description(method: str) -> None:
    cls = registry()[method]
    described = cls.settings_help()
    assert list(described) == list(cls.defaults), "every setting, in the order of defaults"
    for key, text in described.items():
        assert text.strip() and "\n" not in text and len(text) <= 110, (key, text)
        for choice in cls.choices.get(key, ()):  # what the docs show names every allowed value
            assert str(choice) in text, (key, choice, text)
    assert re.search(r"\b(19|20)\d\d\b|n\.d\.", cls.paper) and "\n" not in cls.paper, cls.paper
    export = cls.onnx_export()
    assert export in ("yes", "no") or export.startswith("depends: "), export


def test_a_detectors_own_description_wins_over_its_bases_and_upstreams() -> None:
    knn_clf, vim, tuned, maha = (registry()[m] for m in ("knn-clf", "vim", "mahalanobis-tuned", "mahalanobis"))
    assert "0: all" in vim.settings_help()["fit_samples"]  # the penultimate detectors' shared line
    assert knn_clf.settings_help()["fit_samples"] != vim.settings_help()["fit_samples"]  # knn-clf's own
    assert tuned.settings_help()["eps"] != maha.settings_help()["eps"]
    assert registry()["msp"].settings_help()["arch"] == registry()["dgc"].settings_help()["arch"]  # the classifier's


def _detector(name: str, defaults: dict[str, Any], described: dict[str, str]) -> type[Detector]:
    class Probe(Detector):
        method = name
        requires = Requires()
        presets: ClassVar[dict[str, dict[str, Any]]] = {p: {} for p in PRESET_NAMES}
        help = described

    Probe.defaults = defaults
    return Probe


def test_registration_refuses_an_undescribed_setting() -> None:
    with pytest.raises(ValueError, match=r"probe-undescribed: settings without a description: \['alpha'\]"):
        register(_detector("probe-undescribed", {"alpha": 1.0, "beta": 2, "seed": 0}, {"beta": "b"}))
    with pytest.raises(ValueError, match=r"probe-multiline.*\['beta'\].*one line"):
        register(_detector("probe-multiline", {"beta": 2}, {"beta": "first\nsecond"}))
    assert "probe-undescribed" not in registry() and "probe-multiline" not in registry()
    # described (seed by the descriptions common to all detectors): accepted
    cls = _detector("probe-described", {"alpha": 1.0, "seed": 0}, {"alpha": "a"})
    assert cls.settings_help() == {"alpha": "a", "seed": Detector.help["seed"]}


def test_create_applies_the_preset_then_the_settings() -> None:
    det = create("geom", preset="smoke", epochs=3)
    smoke = registry()["geom"].presets["smoke"]
    assert det.config == {**registry()["geom"].defaults, **smoke, "epochs": 3} and smoke["epochs"] != 3
    assert create("geom", preset="smoke").config == create("geom", **settings_for("geom", "smoke")).config
    assert create("geom", preset=None).config == create("geom").config == registry()["geom"].defaults
    with pytest.raises(InputError, match=r"unknown preset 'fast'; known: cpu, paper, smoke, demo"):
        create("geom", preset="fast")
    with pytest.raises(InputError, match=r"unknown settings \['epoch'\]"):
        create("geom", preset="smoke", epoch=3)
    with pytest.raises(InputError, match="setting .epochs. must be a"):
        create("geom", preset="smoke", epochs="3")


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    from oodscope.data import load

    train = load("digits", "train")
    keep = np.isin(train.labels, [0, 1])
    return {"train": train.subset(keep), "outliers": train.images[train.labels == 7][:16]}


@pytest.mark.parametrize("method", ["msp", "temperature", "react", "nac", "ae", "bce"])
def test_the_declared_onnx_export_is_what_a_fitted_detector_has(method: str, digits: dict[str, Any]) -> None:
    det = create(method, preset="smoke", progress=False)
    kw = {"validation": digits["train"]} if det.requires.validation else {}
    det.fit(digits["train"], digits["outliers"] if det.requires.outliers else None, **kw)
    assert (det._graph() is not None) == (type(det).onnx_export() != "no")
