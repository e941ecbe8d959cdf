"""SCALE: post hoc activation scaling (Xu, Chen, Franchi & Yao, "Scaling for training time and
post-hoc out-of-distribution detection enhancement", ICLR 2024).

ASH-S (:mod:`~oodscope.detectors.ash`) without its pruning: each image's penultimate vector
h(x) in R^D (:mod:`~oodscope.detectors.penultimate`) is multiplied by exp(r(x)), where

    r(x) = s1 / s2,   s1 = sum_j h_j(x),   s2 = sum of the k = D - round(D p / 100) largest h_j(x)

(p = ``percentile``; the pruning only measures how concentrated the activations are), and the
score is the energy of the head on the scaled, unpruned vector,

    s(x) = -log sum_k exp((W exp(r(x)) h(x) + b)_k),   higher = more out-of-distribution

(the paper's energy negated, as :mod:`~oodscope.detectors.energy`). ``outputs(x)`` also returns
the model's unscaled logits.

Default: p = 85, the percentile of the authors' configuration (``configs/postprocessors/scale.yml``
of their OpenOOD-based code, for their ImageNet-1k results); OpenOOD's CIFAR numbers choose p on
OOD validation data, which oodscope does not use. As in their code the scaling is applied to the
pooled features the last linear layer reads, the penultimate vector here. Where s2 = 0 (for the
non-negative, post-ReLU features the method assumes, an all-zero vector) r is taken as 0 where the
authors' code gives NaN. Fitting reads no training image: ``fit`` checks that k >= 1 for the
head's D.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.detectors.penultimate import ShapingDetector
from oodscope.detectors.registry import register
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS


def scaled(h: torch.Tensor, k: int) -> torch.Tensor:
    """Each row of ``h`` (float64) times exp(its sum / the sum of its k largest entries)."""
    s1 = h.sum(dim=1, keepdim=True)
    s2 = h.topk(k, dim=1).values.sum(dim=1, keepdim=True)
    ratio = torch.where(s2 != 0, s1 / torch.where(s2 != 0, s2, torch.ones_like(s2)), torch.zeros_like(s2))
    return h * torch.exp(ratio)


@register
class ScaleDetector(ShapingDetector):
    method = "scale"
    paper = ('Xu, Chen, Franchi & Yao, "Scaling for training time and post-hoc out-of-distribution detection '
             'enhancement", ICLR 2024')
    help = {"percentile": "p: s2 sums the entries of each image's vector above this percentile (the authors: 85)"}
    defaults: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "percentile": 85.0}
    order = 72

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self.head_logits(scaled(features.double(), int(self.fitted["kept"]))), dim=1)
