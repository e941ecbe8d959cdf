"""ReAct: rectified activations (Sun, Guo & Li, "ReAct: out-of-distribution detection with
rectified activations", NeurIPS 2021).

The penultimate features h(x) of a classifier (:mod:`~oodscope.detectors.penultimate`) are
clipped at a threshold c, the ``percentile``-th percentile of all the activations of the training
features (every unit of every image pooled, as in the authors' code; p = 90 is the paper's
default), and the energy score is taken on the logits of the clipped features:

    h_bar(x) = min(h(x), c),   f_bar(x) = W h_bar(x) + b,
    s(x) = -log sum_k exp(f_bar_k(x)),   higher = more out-of-distribution

(the paper's energy score negated, as :mod:`~oodscope.detectors.energy`). ``outputs(x)`` also
returns the model's unclipped logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


@register
class ReActDetector(PenultimateDetector):
    method = "react"
    paper = 'Sun, Guo & Li, "ReAct: out-of-distribution detection with rectified activations", NeurIPS 2021'
    help = {"percentile": "p: features are clipped at this percentile of all training activations (the paper: 90)"}
    defaults: dict[str, Any] = {**PENULTIMATE_DEFAULTS, "percentile": 90.0}
    order = 70
    state: ClassVar[tuple[str, ...]] = ("clip",)

    def _check_config(self) -> None:
        super()._check_config()
        if not 0 < float(self.config["percentile"]) <= 100:
            raise InputError(f"{self.method}: percentile must be in (0, 100], got {self.config['percentile']}")

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        c = np.percentile(features.double().numpy().ravel(), float(self.config["percentile"]))
        self.clip = torch.tensor([c], dtype=torch.float64)
        self.fitted["clip"] = float(c)

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        clipped = features.double().clamp(max=float(self.clip[0]))
        return -torch.logsumexp(self.head_logits(clipped), dim=1)
