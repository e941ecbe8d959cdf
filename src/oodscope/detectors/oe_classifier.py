"""Outlier exposure on a classifier (Hendrycks, Mazeika & Dietterich, "Deep anomaly detection with
outlier exposure", ICLR 2019).

A classifier f of the in-distribution classes is trained with cross-entropy on the labelled
in-distribution images plus, on known outliers x_out, the cross-entropy to the uniform
distribution over the K classes:

    L = E_in[ -log softmax_y(f(x)) ] + lambda * E_out[ -(1/K) sum_k log softmax_k(f(x_out)) ],

lambda = ``oe_weight`` (0.5 in the paper). The score is the maximum softmax probability's negative,
s(x) = -max_k softmax_k(f(x)), higher = more out-of-distribution. The outliers of a batch are
``oe_batch`` draws (with replacement, randomly distorted with ``oe_augment``) from the known outlier
images: with only a few of them, as in the setting of Okamoto, Suzuki & Matsuo (2021),
"Semi-supervised out-of-distribution detection using the output of intermediate layers in deep
neural networks", this is the classifier-side counterpart of ``layers-clf``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from oodscope.detectors.base import Requires
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.detectors.registry import register
from oodscope.detectors.trained_clf import OE_DEFAULTS, Taps, TrainedClassifierDetector
from oodscope.errors import InputError

OE_CLASSIFIER_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, **OE_DEFAULTS, "oe_weight": 0.5}


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the uniform distribution to softmax(logits), per row:
    -(1/K) sum_k log softmax_k = logsumexp(logits) - mean(logits)."""
    return torch.logsumexp(logits, dim=1) - logits.mean(dim=1)


@register
class OEClassifierDetector(TrainedClassifierDetector):
    method = "oe-classifier"
    paper = 'Hendrycks, Mazeika & Dietterich, "Deep anomaly detection with outlier exposure", ICLR 2019'
    help = {"oe_weight": "lambda: weight of the outliers' cross-entropy to the uniform distribution (the paper: 0.5)"}
    requires = Requires(labels=True, outliers=True)
    defaults = OE_CLASSIFIER_DEFAULTS
    order = 67

    def _check_config(self) -> None:
        if self.config["oe_weight"] < 0:
            raise InputError(f"oe-classifier: oe_weight must be >= 0, got {self.config['oe_weight']}")

    def loss(self, taps: Taps, labels: torch.Tensor, outlier_taps: Taps | None) -> torch.Tensor:
        loss = F.cross_entropy(taps["logits"], labels)
        if outlier_taps is not None:
            loss = loss + float(self.config["oe_weight"]) * uniform_cross_entropy(outlier_taps["logits"]).mean()
        return loss

    def score_of(self, taps: Taps) -> torch.Tensor:
        return -torch.softmax(taps["logits"].double(), dim=1).max(dim=1).values
