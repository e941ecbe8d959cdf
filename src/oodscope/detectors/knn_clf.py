"""``knn-clf``: deep nearest neighbours on a classifier's penultimate features (Sun, Ming, Zhu &
Li, "Out-of-distribution detection with deep nearest neighbors", ICML 2022).

With z = h(x) / ||h(x)||_2 the L2-normalised penultimate vector of the classifier
(:mod:`~oodscope.detectors.penultimate`) and B the normalised vectors of the training images
(the ``fit_samples`` drawn; 0 = all of them),

    s(x) = || z - z_(k) ||_2,   z_(k) the k-th nearest member of B,   higher = more out-of-distribution

(the paper's score -||z - z_(k)|| negated; the authors' code ranks by the squared distance, the
same order). Default k = 50, the paper's (and the authors' ``run_cifar.py``) value for CIFAR-10
with the whole training set as the bank, hence ``fit_samples=0`` here: a bank of N x D floats, all
training images (fitting on a stream needs ``fit_samples`` > 0, a sample; a smaller bank may call
for a smaller k). Norms below 1e-12 are taken as 1e-12 (an all-zero vector stays zero) where the
authors' code adds 1e-10.

How it differs from ``deep-knn`` (:mod:`~oodscope.detectors.deep_knn`): the same distance, but on
the penultimate vector of a multi-class classifier (oodscope's, trained by ``fit`` on the labelled
images, shared, or a model of yours through :class:`~oodscope.upstream.adapter.ModelAdapter`), so
it needs class labels and belongs to the classifier family (the classifier suite runs it, beside
the other post hoc detectors on the same network); ``deep-knn`` is label-free, reads a feature
extractor (a model of yours, or GEOM's f) and keeps a streamed sample of at most ``bank`` features
with k = 1. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError

CHUNK = 1 << 22  # distances computed at a time (queries x bank), 32 MiB of float64


def kth_distance(queries: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """Euclidean distance of each row of ``queries`` to its k-th nearest row of ``bank`` (float64),
    a block of queries at a time."""
    rows = max(1, CHUNK // max(1, len(bank)))
    return torch.cat([torch.cdist(queries[i:i + rows], bank).topk(k, dim=1, largest=False).values[:, -1]
                      for i in range(0, len(queries), rows)])


@register
class KNNClassifierDetector(PenultimateDetector):
    method = "knn-clf"
    paper = 'Sun, Ming, Zhu & Li, "Out-of-distribution detection with deep nearest neighbors", ICML 2022'
    help = {"fit_samples": "training images in the bank, drawn with seed (0: all, the paper's; a stream needs > 0)",
            "k": "the distance to the k-th nearest training feature (the paper: 50)"}
    defaults: dict[str, Any] = {**PENULTIMATE_DEFAULTS, "fit_samples": 0, "k": 50}
    order = 76
    state: ClassVar[tuple[str, ...]] = ("bank",)  # the training features as the network gives them (float32)

    def _check_config(self) -> None:
        super()._check_config()
        if int(self.config["k"]) < 1:
            raise InputError(f"{self.method}: k must be >= 1, got {self.config['k']}")

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        k = int(self.config["k"])
        if len(features) < k:
            raise InputError(f"{self.method}: k={k} needs at least that many training images, got {len(features)}")
        self.bank = features.float().contiguous()
        self._normed = None
        self.fitted["bank_size"] = int(len(features))

    def normed_bank(self) -> torch.Tensor:
        """The bank L2-normalised, float64 (kept in memory, not saved)."""
        if getattr(self, "_normed", None) is None:
            self._normed = torch.nn.functional.normalize(self.bank.double(), dim=1)
        return self._normed

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.normalize(features.double(), dim=1)
        return kth_distance(z, self.normed_bank(), int(self.config["k"]))
