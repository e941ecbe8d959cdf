"""MSP: maximum softmax probability (Hendrycks & Gimpel, "A baseline for detecting misclassified
and out-of-distribution examples in neural networks", ICLR 2017).

A classifier f of the in-distribution classes (:class:`~oodscope.detectors.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) gives logits f(x); inputs on which
it is not confident are out-of-distribution:

    s(x) = -max_k softmax_k(f(x) / T),   T = ``temperature`` (1 in the paper),

in [-1, -1/K], higher = more out-of-distribution. ``outputs(x)`` also returns the logits, from
which a benchmark reads the classifier's accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.detectors.registry import register
from oodscope.errors import InputError

MSP_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "temperature": 1.0}


@register
class MSPDetector(Detector):
    method = "msp"
    requires = Requires(labels=True, upstream=Classifier)
    defaults = MSP_DEFAULTS
    choices = CLASSIFIER_CHOICES
    presets = CLASSIFIER_PRESETS
    order = 50

    def _check_config(self) -> None:
        if not self.config["temperature"] > 0:
            raise InputError(f"msp: temperature must be positive, got {self.config['temperature']}")

    def _fit(self, data: FitData) -> None:
        """Nothing beyond the classifier, which ``fit`` trained (or was given)."""

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        logits = self.upstream.logits(x)
        p = torch.softmax(logits / float(self.config["temperature"]), dim=1)
        return {"score": -p.max(dim=1).values.numpy(), "logits": logits.numpy()}
