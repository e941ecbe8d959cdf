"""fDBD: fast decision boundary based detection (Liu & Qin, "Fast decision boundary based
out-of-distribution detector", ICML 2024).

On a classifier's penultimate features h (:mod:`~oodscope.detectors.penultimate`; logits
z = W h + b, rows w_k of W) with predicted class c = argmax_k z_k, the distance from h to the
decision boundary between c and another class j is |(w_c - w_j)^T h + (b_c - b_j)| / ||w_c - w_j||.
The paper averages it over the K - 1 other classes and regularises it by the deviation of h from
the mean mu of the training features (``fit_samples`` training images):

    fDBD(x) = 1/(K-1) sum_{j != c} |z_c - z_j| / ||w_c - w_j||  /  ||h(x) - mu||,

    s(x) = -fDBD(x),   higher = more out-of-distribution

(in-distribution features lie far from the boundaries relative to their distance from the mean).
The authors' code sums over j instead of averaging (a constant factor K - 1, the same ranking); the
normaliser is ||h - mu||, the paper's and the authors' default (OpenOOD also offers ||h||, chosen on
OOD validation data). The logits are recomputed in float64 from h, W and b. A pair of classes with
identical weight rows has no boundary and counts 0. It needs at least two classes.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from oodscope.detectors.penultimate import PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


@register
class FDBDDetector(PenultimateDetector):
    method = "fdbd"
    paper = 'Liu & Qin, "Fast decision boundary based out-of-distribution detector", ICML 2024'
    order = 82
    state: ClassVar[tuple[str, ...]] = ("train_mean",)

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        w, _ = self.head_parameters()
        if w.shape[0] < 2:
            raise InputError(f"{self.method}: needs a classifier of at least 2 classes, got {w.shape[0]}")
        self.train_mean = features.double().mean(dim=0)

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        w, b = self.head_parameters()
        h = features.double()
        z = h @ w.T + b
        pred = z.argmax(dim=1)
        gaps = (z.gather(1, pred[:, None]) - z).abs()  # |z_c - z_j|, 0 at j = c
        norms = torch.cdist(w, w, compute_mode="donot_use_mm_for_euclid_dist")[pred]  # ||w_c - w_j||, (n, K)
        distance = torch.where(norms > 0, gaps / norms.clamp_min(1e-300), torch.zeros_like(gaps)).sum(dim=1)
        return -distance / (w.shape[0] - 1) / torch.linalg.vector_norm(h - self.train_mean, dim=1)
