"""NNGuide: nearest neighbour guidance (Park, Jung & Teoh, "Nearest neighbor guidance for
out-of-distribution detection", ICCV 2023).

On a classifier's penultimate features h (:mod:`~oodscope.detectors.penultimate`; logits
z = W h + b), with the classifier's confidence the negative energy
conf(x) = log sum_k exp(z_k(x)) and h^ = h / ||h|| the unit feature:

* the bank: the ``fit_samples`` training images' unit features, each scaled by its confidence,
  b_i = conf(x_i) h^_i;
* the guidance G(x): the mean of the ``k`` largest inner products h^(x)^T b_i over the bank (the
  cosine similarity to a bank feature times that feature's confidence; the k nearest by that
  product, as the authors' faiss ``IndexFlatIP`` search);

    NNGuide(x) = G(x) conf(x),   s(x) = -NNGuide(x),   higher = more out-of-distribution.

Defaults as the authors' code (``configs/detector/nnguide.yaml``, ``dataloaders/factory.py``):
k = 10; their bank is a random 1 % of ImageNet's training images (about 12,800), here the
``fit_samples`` = 10,000 images drawn with ``seed`` (0: all training images; OpenOOD uses k = 100).
Zero features stay zero (h / max(||h||, 1e-12), as ``F.normalize``). The logits are recomputed in
float64 from h, W and b.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


def unit(h: torch.Tensor) -> torch.Tensor:
    """Rows of ``h`` divided by their norm (zero rows stay zero)."""
    return h / torch.linalg.vector_norm(h, dim=1, keepdim=True).clamp_min(1e-12)


@register
class NNGuideDetector(PenultimateDetector):
    method = "nnguide"
    paper = 'Park, Jung & Teoh, "Nearest neighbor guidance for out-of-distribution detection", ICCV 2023'
    help = {"fit_samples": "training images in the bank, drawn with seed (0: all)",
            "k": "the guidance is the mean of the k largest products with the bank (the authors: 10)"}
    defaults: dict[str, Any] = {**PENULTIMATE_DEFAULTS, "k": 10}
    order = 83
    state: ClassVar[tuple[str, ...]] = ("bank",)

    def _check_config(self) -> None:
        super()._check_config()
        if int(self.config["k"]) < 1:
            raise InputError(f"{self.method}: k must be >= 1, got {self.config['k']}")

    def confidence(self, h: torch.Tensor) -> torch.Tensor:
        """log sum_k exp(z_k) of float64 features ``h``."""
        return torch.logsumexp(self.head_logits(h), dim=1)

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        k = int(self.config["k"])
        if k > len(features):
            raise InputError(f"{self.method}: k = {k} exceeds the bank of {len(features)} training images")
        h = features.double()
        self.bank = unit(h) * self.confidence(h)[:, None]

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        h = features.double()
        guidance = torch.topk(unit(h) @ self.bank.T, int(self.config["k"]), dim=1).values.mean(dim=1)
        return -guidance * self.confidence(h)
