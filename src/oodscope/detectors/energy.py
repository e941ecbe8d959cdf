"""Energy score (Liu, Wang, Owens & Li, "Energy-based out-of-distribution detection",
NeurIPS 2020).

A classifier f of the in-distribution classes (:class:`~oodscope.upstream.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) defines the free energy

    E(x; f) = -T log sum_k exp(f_k(x) / T),   T = ``temperature`` (1 in the paper),

which is lower for inputs the classifier has seen the like of; the score is s(x) = E(x; f),
higher = more out-of-distribution. Unlike the maximum softmax probability it keeps the scale of
the logits, which the softmax normalises away. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register

ENERGY_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "temperature": 1.0}


@register
class EnergyDetector(LogitScoreDetector):
    method = "energy"
    paper = 'Liu, Wang, Owens & Li, "Energy-based out-of-distribution detection", NeurIPS 2020'
    help = {"temperature": "T of the free energy -T log sum_k exp(f_k(x) / T) (the paper: 1)"}
    defaults = ENERGY_DEFAULTS
    order = 51

    def logit_score(self, logits: torch.Tensor) -> torch.Tensor:
        t = float(self.config["temperature"])
        return -t * torch.logsumexp(logits.double() / t, dim=1)
