"""Temperature scaling as a detector (Guo et al., "On calibration of modern neural networks", ICML
2017; Takahashi's lecture notes "Deep learning: reliability of inference", University of Aizu,
n.d.): the classifier's logits divided by one temperature T fitted on the held-out validation images
by minimising their negative log-likelihood (:class:`~oodscope.calibration.TemperatureScaler`). The
score is the maximum softmax probability of the scaled logits, negated (MSP at the fitted T;
higher = more out-of-distribution), and ``outputs(x)["logits"]`` are the scaled logits, so a
benchmark records the ECE and NLL after scaling beside ``msp``'s before. Needs validation images
with their labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.calibration import TemperatureScaler
from oodscope.detectors.base import FitData, Requires
from oodscope.upstream.classifier import Classifier
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register


@register
class TemperatureScaledDetector(LogitScoreDetector):
    method = "temperature"
    paper = 'Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural networks", ICML 2017'
    requires = Requires(labels=True, validation=True, upstream=Classifier)
    order = 51

    def _fit(self, data: FitData) -> None:
        logits = self.upstream.logits(data.validation).double().numpy()
        self.fitted["temperature"] = float(TemperatureScaler().fit(logits, data.validation_labels.numpy()).temperature)

    def summary(self) -> dict[str, Any]:
        return {"temperature": self.fitted["temperature"]}

    def logit_score(self, logits: torch.Tensor) -> torch.Tensor:
        return -torch.softmax(logits.double() / float(self.fitted["temperature"]), dim=1).max(dim=1).values

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        logits = self.upstream.logits(x)
        return {"score": self.score_logits(logits), "logits": (logits / float(self.fitted["temperature"])).numpy()}
