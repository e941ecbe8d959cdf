"""Maximum logit (Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song, "Scaling
out-of-distribution detection for real-world settings", ICML 2022).

With the logits f(x) of a classifier of the in-distribution classes
(:class:`~oodscope.detectors.classifier.Classifier`), the score is

    s(x) = -max_k f_k(x),   higher = more out-of-distribution:

the maximum softmax probability without the softmax, whose normalisation hides how large the
winning logit is. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.detectors.registry import register


@register
class MaxLogitDetector(Detector):
    method = "max-logit"
    requires = Requires(labels=True, upstream=Classifier)
    defaults = CLASSIFIER_DEFAULTS
    choices = CLASSIFIER_CHOICES
    presets = CLASSIFIER_PRESETS
    order = 52

    def _fit(self, data: FitData) -> None:
        """Nothing beyond the classifier, which ``fit`` trained (or was given)."""

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        logits = self.upstream.logits(x)
        return {"score": -logits.max(dim=1).values.double().numpy(), "logits": logits.numpy()}
