"""GEN: generalized entropy of the softmax (Liu, Lochman & Zach, "GEN: pushing the limits of
softmax-based out-of-distribution detection", CVPR 2023).

With p = softmax(f(x)) the classifier's class probabilities
(:class:`~oodscope.upstream.classifier.Classifier`, or a model of yours) and p_(1) >= p_(2) >= ...
sorted, the generalized entropy of the M largest is

    G_gamma(p) = sum_{j=1..M} p_(j)^gamma (1 - p_(j))^gamma,

largest for a flat distribution; the paper scores -G_gamma (higher = in-distribution), so here
s(x) = G_gamma(p(x)), higher = more out-of-distribution. The probabilities are those of all K
classes (not renormalised over the M kept), as in the authors' ``benchmark.py``.

Defaults: gamma = 0.1 and M = 100 (``gamma``, ``top_m``), the authors' defaults; M is capped at
the number of classes K (every class counts when K <= M, so on 10 classes M = 10). The score is a
torch function of the logits: differentiable (:meth:`differentiable_score`) and exported to ONNX
with the classifier. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS


@register
class GENDetector(LogitScoreDetector):
    method = "gen"
    paper = 'Liu, Lochman & Zach, "GEN: pushing the limits of softmax-based out-of-distribution detection", CVPR 2023'
    help = {"gamma": "gamma of the generalized entropy (the authors: 0.1)",
            "top_m": "M: the largest probabilities summed, at most the number of classes (the authors: 100)"}
    defaults: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "gamma": 0.1, "top_m": 100}
    order = 74

    def _check_config(self) -> None:
        super()._check_config()
        if not float(self.config["gamma"]) > 0:
            raise InputError(f"{self.method}: gamma must be positive, got {self.config['gamma']}")
        if int(self.config["top_m"]) < 1:
            raise InputError(f"{self.method}: top_m must be >= 1, got {self.config['top_m']}")

    def logit_score(self, logits: torch.Tensor) -> torch.Tensor:
        g = float(self.config["gamma"])
        p = torch.softmax(logits.double(), dim=1)
        top = p.topk(min(int(self.config["top_m"]), p.shape[1]), dim=1).values
        return (top.pow(g) * (1 - top).pow(g)).sum(dim=1)
