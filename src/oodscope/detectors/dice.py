"""DICE: directed sparsification of the last layer (Sun & Li, "DICE: leveraging sparsification for
out-of-distribution detection", ECCV 2022).

With h-bar the mean penultimate vector of the training images (:mod:`~oodscope.detectors.penultimate`;
the ``fit_samples`` drawn) and W (K x D), b the last linear layer, the contribution of unit j to
class k is V_kj = h-bar_j W_kj. Only the weights whose contribution exceeds the p-th percentile of
all K x D contributions are kept (p = ``sparsity`` in percent; NumPy's linear percentile, a strict
">", as the authors' code):

    M_kj = 1[V_kj > percentile_p(V)],   f_DICE(x) = (M * W) h(x) + b,
    s(x) = -log sum_k exp(f_DICE,k(x)),   higher = more out-of-distribution

(the paper's energy negated, as :mod:`~oodscope.detectors.energy`). Default p = 90, the paper's
sparsity for CIFAR-10 and CIFAR-100 (``demo-cifar.sh`` of the authors' code runs ``--p 90``).
The mean is kept (``dice.mean``); the mask is recomputed from it and the head. ``outputs(x)`` also
returns the model's dense logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


@register
class DICEDetector(PenultimateDetector):
    method = "dice"
    paper = 'Sun & Li, "DICE: leveraging sparsification for out-of-distribution detection", ECCV 2022'
    help = {"sparsity": "p: keep the weights whose contribution exceeds this percentile of all K x D (the paper: 90)"}
    defaults: dict[str, Any] = {**PENULTIMATE_DEFAULTS, "sparsity": 90.0}
    order = 73
    state: ClassVar[tuple[str, ...]] = ("mean",)

    def _check_config(self) -> None:
        super()._check_config()
        if not 0 <= float(self.config["sparsity"]) < 100:
            raise InputError(f"{self.method}: sparsity must be in [0, 100) (percent of weights dropped), "
                             f"got {self.config['sparsity']}")

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.mean = features.double().mean(dim=0)
        self._sparse = None
        w, _ = self.sparse_head()
        self.fitted["kept_weights"] = int((w != 0).sum())

    def sparse_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M * W, b), float64: the weights whose contribution exceeds the p-th percentile."""
        if getattr(self, "_sparse", None) is None:
            w, b = self.head_parameters()
            contrib = self.mean.double()[None, :] * w
            threshold = np.percentile(contrib.numpy(), float(self.config["sparsity"]))
            self._sparse = (w * (contrib > threshold), b)
        return self._sparse

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        w, b = self.sparse_head()
        return -torch.logsumexp(features.double() @ w.T + b, dim=1)
