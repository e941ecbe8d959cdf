"""Isolation forest (Liu, Ting & Zhou, ICDM 2008), PyOD's ``IForest``: inputs isolated by fewer
random axis-aligned splits are more anomalous, s(x) derived from 2^(-E[h(x)] / c(n)) with h the
path length over the trees."""

from __future__ import annotations

from typing import Any

from oodscope.detectors.pyod_base import PyODDetector
from oodscope.detectors.registry import register


@register
class IForestDetector(PyODDetector):
    method = "iforest"
    paper = 'Liu, Ting & Zhou, "Isolation forest", ICDM 2008'
    pyod_model = "pyod.models.iforest.IForest"
    defaults: dict[str, Any] = {"n_estimators": 100, "seed": 0}
    help = {"n_estimators": "trees in the forest", "seed": "random seed of the forest (PyOD's random_state)"}
    order = 62

    def _model_kwargs(self) -> dict[str, Any]:
        return {"n_estimators": self.config["n_estimators"], "random_state": self.config["seed"], "n_jobs": 1}
