"""GEOM: anomaly detection by recognising geometric transformations (Golan & El-Yaniv, NeurIPS 2018).

A network f (:class:`~oodscope.upstream.geom_net.GeomNet`) is trained to tell which of K
transformations T_1..T_K was applied to an in-distribution image. Normality of x is
sum_j softmax_j(f(T_j x)): how well f recognises each transformation. The score is its negation,

    s(x) = -sum_{j=1..K} softmax_j(f(T_j x)),   in [-K, 0], higher = more out-of-distribution.

f is the detector's upstream network: a benchmark trains it once and shares it with ``layers``.
Outliers are not used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.geom_net import GEOM_CHOICES, GEOM_DEFAULTS, GEOM_PRESETS, GeomNet
from oodscope.detectors.registry import register


@register
class GeomDetector(Detector):
    method = "geom"
    paper = 'Golan & El-Yaniv, "Deep anomaly detection using geometric transformations", NeurIPS 2018'
    requires = Requires(upstream=GeomNet)
    defaults: dict[str, Any] = GEOM_DEFAULTS
    choices = GEOM_CHOICES
    presets = GEOM_PRESETS
    order = 10

    @property
    def transforms(self):
        """f's transformations."""
        return self.upstream.transforms

    def _fit(self, data: FitData) -> None:
        """Nothing beyond f, which ``fit`` trained (or was given)."""

    def _score(self, x: torch.Tensor) -> np.ndarray:
        return self.upstream.geom_score(x)

    def _graph(self) -> torch.nn.Module:
        return self.upstream.geom_graph()
