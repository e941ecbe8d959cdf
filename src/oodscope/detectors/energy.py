"""Energy score (Liu, Wang, Owens & Li, "Energy-based out-of-distribution detection",
NeurIPS 2020).

A classifier f of the in-distribution classes (:class:`~oodscope.detectors.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) defines the free energy

    E(x; f) = -T log sum_k exp(f_k(x) / T),   T = ``temperature`` (1 in the paper),

which is lower for inputs the classifier has seen the like of; the score is s(x) = E(x; f),
higher = more out-of-distribution. Unlike the maximum softmax probability it keeps the scale of
the logits, which the softmax normalises away. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.detectors.registry import register
from oodscope.errors import InputError

ENERGY_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "temperature": 1.0}


@register
class EnergyDetector(Detector):
    method = "energy"
    requires = Requires(labels=True, upstream=Classifier)
    defaults = ENERGY_DEFAULTS
    choices = CLASSIFIER_CHOICES
    presets = CLASSIFIER_PRESETS
    order = 51

    def _check_config(self) -> None:
        if not self.config["temperature"] > 0:
            raise InputError(f"energy: temperature must be positive, got {self.config['temperature']}")

    def _fit(self, data: FitData) -> None:
        """Nothing beyond the classifier, which ``fit`` trained (or was given)."""

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        logits = self.upstream.logits(x)
        t = float(self.config["temperature"])
        return {"score": (-t * torch.logsumexp(logits.double() / t, dim=1)).numpy(), "logits": logits.numpy()}
