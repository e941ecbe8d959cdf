"""Relative Mahalanobis distance (Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A simple fix to
Mahalanobis distance for improving near-OOD detection", 2021, arXiv:2106.09022).

On a classifier's penultimate features h (:mod:`~oodscope.detectors.penultimate`), fitted on the
features and labels of ``fit_samples`` training images (N of them):

* class Gaussians with a tied covariance, as Lee et al.'s Mahalanobis detector:
  mu_k = mean of h over class k, Sigma = (1/N) sum_k sum_{i in k} (h_i - mu_k)(h_i - mu_k)^T,
  MD_k(h) = (h - mu_k)^T Sigma^+ (h - mu_k);
* one background Gaussian over all the training features: mu_0 = their mean,
  Sigma_0 = (1/N) sum_i (h_i - mu_0)(h_i - mu_0)^T, MD_0(h) = (h - mu_0)^T Sigma_0^+ (h - mu_0);

    RMD_k(h) = MD_k(h) - MD_0(h),   s(x) = min_k RMD_k(h(x)),   higher = more out-of-distribution

(the paper's confidence -min_k RMD_k, negated). The distances are squared (no root), as in the
paper and OpenOOD; ^+ is the pseudo-inverse (``hermitian``), in float64. Fitting refuses a sample in
which a class of the classifier has no image (its mean would be made up).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from oodscope.detectors.mahalanobis import class_gaussians, min_distance
from oodscope.detectors.penultimate import PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


@register
class RMDSDetector(PenultimateDetector):
    method = "rmds"
    paper = ('Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A simple fix to Mahalanobis distance for improving '
             'near-OOD detection", arXiv 2021')
    order = 81
    state: ClassVar[tuple[str, ...]] = ("class_means", "class_precision", "background_mean", "background_precision")

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        h, y = features.double().numpy(), labels.numpy()
        classes = int(self.upstream.fitted["classes"])
        missing = [c for c in range(classes) if not np.any(y == c)]
        if missing:
            raise InputError(f"{self.method}: classes {missing} of the classifier's {classes} have no image among the "
                             f"{len(h)} fit images; raise fit_samples (0 = all training images)")
        means, precision = class_gaussians(h, y, classes)
        mean = h.mean(axis=0)
        centred = h - mean
        self.class_means, self.class_precision = torch.from_numpy(means), torch.from_numpy(precision)
        self.background_mean = torch.from_numpy(mean)
        self.background_precision = torch.from_numpy(np.linalg.pinv(centred.T @ centred / len(h), hermitian=True))

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        h = features.double()
        background = min_distance(h, self.background_mean.unsqueeze(0), self.background_precision)
        return min_distance(h, self.class_means, self.class_precision) - background
