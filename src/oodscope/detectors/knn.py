"""kNN distance (Ramaswamy, Rastogi & Shim, SIGMOD 2000), PyOD's ``KNN``: the score of x is its
distance to its k-th nearest training vector (``method="largest"``; "mean" and "median" average
over the k), s(x) = ||x - NN_k(x)||_2. On raw pixels this is the "pixel kNN" baseline."""

from __future__ import annotations

from typing import Any

from oodscope.detectors.pyod_base import PyODDetector
from oodscope.detectors.registry import register


@register
class KNNDetector(PyODDetector):
    method = "knn"
    paper = 'Ramaswamy, Rastogi & Shim, "Efficient algorithms for mining outliers from large data sets", SIGMOD 2000'
    pyod_model = "pyod.models.knn.KNN"
    defaults: dict[str, Any] = {"n_neighbors": 5, "method": "largest"}
    help = {"n_neighbors": "k: the neighbours the distance is read from",
            "method": '"largest": the distance to the k-th nearest; "mean" or "median" of the k distances'}
    choices = {"method": ("largest", "mean", "median")}
    order = 61

    def _model_kwargs(self) -> dict[str, Any]:
        return {"n_neighbors": self.config["n_neighbors"], "method": self.config["method"], "n_jobs": 1}
