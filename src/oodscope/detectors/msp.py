"""MSP: maximum softmax probability (Hendrycks & Gimpel, "A baseline for detecting misclassified
and out-of-distribution examples in neural networks", ICLR 2017).

A classifier f of the in-distribution classes (:class:`~oodscope.upstream.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) gives logits f(x); inputs on which
it is not confident are out-of-distribution:

    s(x) = -max_k softmax_k(f(x) / T),   T = ``temperature`` (1 in the paper),

in [-1, -1/K], higher = more out-of-distribution. ``outputs(x)`` also returns the logits, from
which a benchmark reads the classifier's accuracy.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register

MSP_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "temperature": 1.0}


@register
class MSPDetector(LogitScoreDetector):
    method = "msp"
    paper = ('Hendrycks & Gimpel, "A baseline for detecting misclassified and out-of-distribution examples in '
             'neural networks", ICLR 2017')
    help = {"temperature": "T: the logits are divided by it before the softmax (the paper: 1)"}
    defaults = MSP_DEFAULTS
    order = 50

    def logit_score(self, logits: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits / float(self.config["temperature"]), dim=1)
        return -p.max(dim=1).values
