"""GradNorm (Huang, Geng & Li, "On the importance of gradients for detecting distributional
shifts in the wild", NeurIPS 2021).

The L1 norm of the gradient, with respect to the weight W (K x D) of the classifier's last layer,
of the KL divergence from the uniform distribution u = (1/K, ..., 1/K) to the softmax of the
logits z = W h + b at temperature T:

    D_KL(u || softmax(z / T)) = -(1/K) sum_k log softmax_k(z / T) - log K,
    dD_KL / dz = (p - u) / T,   p = softmax(z / T),
    dD_KL / dW = (p - u) h^T / T   (an outer product: its L1 norm factorises),

    S(x) = ||dD_KL / dW||_1 = ||p - u||_1 ||h||_1 / T,   s(x) = -S(x),   higher = more out-of-distribution.

It is computed in this closed form per image (float64) from the penultimate features h
(:mod:`~oodscope.detectors.penultimate`), not by back-propagation. As the paper and the authors'
code, only the weight's gradient counts, not the bias's (which would add ||p - u||_1 / T); T = 1,
the paper's default. The authors' code back-propagates -sum_k log softmax_k with targets of ones,
K times the KL's gradient (a constant factor, the same ranking). Nothing is fitted beyond the
classifier.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.detectors.penultimate import PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS


@register
class GradNormDetector(PenultimateDetector):
    method = "gradnorm"
    paper = ('Huang, Geng & Li, "On the importance of gradients for detecting distributional shifts in the wild", '
             'NeurIPS 2021')
    defaults: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "temperature": 1.0}  # no fit_samples: nothing is fitted
    help = {"temperature": "T of the softmax whose KL gradient is measured (the paper: 1)"}
    order = 84
    reads_training = False

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        w, b = self.head_parameters()
        t = float(self.config["temperature"])
        h = features.double()
        p = torch.softmax((h @ w.T + b) / t, dim=1)
        return -(p - 1.0 / w.shape[0]).abs().sum(dim=1) * h.abs().sum(dim=1) / t
