"""What the post hoc detectors on a classifier share (``msp``, ``energy``, ``max-logit``, ``odin``,
``mahalanobis``, ``gram``, ``ncd``): they need labelled in-distribution images, read a
:class:`~oodscope.detectors.classifier.Classifier` (trained by ``fit`` or shared), and score its
logits (those reading its layers override ``_fit`` and ``_outputs``)."""

from __future__ import annotations

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.errors import InputError


class LogitScoreDetector(Detector):
    """Subclasses set ``method`` (and ``defaults`` beyond the classifier's) and implement
    :meth:`score_logits`; ``outputs(x)`` returns the score and the logits."""

    requires = Requires(labels=True, upstream=Classifier)
    family = "classifier"
    defaults = CLASSIFIER_DEFAULTS
    choices = CLASSIFIER_CHOICES
    presets = CLASSIFIER_PRESETS

    def _check_config(self) -> None:
        if "temperature" in self.config and not self.config["temperature"] > 0:
            raise InputError(f"{self.method}: temperature must be positive, got {self.config['temperature']}")

    def _fit(self, data: FitData) -> None:
        """Nothing beyond the classifier, which ``fit`` trained (or was given)."""

    def score_logits(self, logits: torch.Tensor) -> np.ndarray:
        """The score, higher = more out-of-distribution, from the classifier's logits."""
        raise NotImplementedError

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        logits = self.upstream.logits(x)
        return {"score": self.score_logits(logits), "logits": logits.numpy()}
