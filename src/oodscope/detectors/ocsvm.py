"""One-class SVM (Schölkopf, Platt, Shawe-Taylor, Smola & Williamson, Neural Computation 2001),
PyOD's ``OCSVM``: a hyperplane in the RBF feature space separating the training vectors from the
origin with margin, at most a fraction ``nu`` outside; the score is the signed distance to it,
higher = more outlying. ``gamma`` None means PyOD's "auto", 1 / (number of features)."""

from __future__ import annotations

from typing import Any

from oodscope.detectors.pyod_base import PyODDetector
from oodscope.detectors.registry import register


@register
class OCSVMDetector(PyODDetector):
    method = "ocsvm"
    paper = ('Schölkopf, Platt, Shawe-Taylor, Smola & Williamson, "Estimating the support of a high-dimensional '
             'distribution", Neural Computation 2001')
    pyod_model = "pyod.models.ocsvm.OCSVM"
    defaults: dict[str, Any] = {"kernel": "rbf", "nu": 0.5, "gamma": None}
    help = {"kernel": '"rbf", "linear", "poly" or "sigmoid"',
            "nu": "upper bound on the fraction of training vectors outside the boundary",
            "gamma": 'kernel coefficient; None (JSON null) = "auto": 1 / (number of features)'}
    choices = {"kernel": ("rbf", "linear", "poly", "sigmoid")}
    order = 63

    def _model_kwargs(self) -> dict[str, Any]:
        return {"kernel": self.config["kernel"], "nu": self.config["nu"], "gamma": self.config["gamma"] or "auto"}
