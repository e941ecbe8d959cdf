"""ViM: virtual-logit matching (Wang, Li, Feng & Zhang, "ViM: out-of-distribution with
virtual-logit matching", CVPR 2022).

On a classifier's penultimate features h (:mod:`~oodscope.detectors.penultimate`; logits
z = W h + b, W K x D), fitted on the features of ``fit_samples`` training images:

* the origin o = -pinv(W) b (the point whose logits are all zero);
* the principal subspace P: the eigenvectors of the D_p largest eigenvalues of the matrix
  (1/N) sum_i (h_i - o)(h_i - o)^T of the training features centred at o (not at their mean,
  as the authors' code: ``EmpiricalCovariance(assume_centered=True)`` on h - o); the residual
  of h is its part (h - o)^{P-perp} in the orthogonal complement (the remaining D - D_p
  eigenvectors);
* alpha = (sum_i max_k z_k(h_i)) / (sum_i ||(h_i - o)^{P-perp}||) over the training features;
* the virtual logit v(x) = alpha ||(h - o)^{P-perp}||.

The paper's score is the softmax probability of the virtual logit among the K logits and v,
exp(v) / (sum_k exp(z_k) + exp(v)) = sigmoid(v - log sum_k exp(z_k)). We return its logit,

    s(x) = alpha ||(h(x) - o)^{P-perp}|| - log sum_k exp(z_k(x)),   higher = more out-of-distribution,

a monotone function of the paper's probability (same ranking, no saturation at 1) and the
negation of the authors' and OpenOOD's ``-vlogit + energy``.

D_p (``dim``; 0 = the authors' rule): 1000 for D >= 2048, 512 for D >= 768, else D // 2, the rule
of the authors' ``benchmark.py`` (the default LeNet's D = 128 gives 64; OpenOOD
picks 256 for ResNet-18's D = 512 by tuning on OOD validation data). The
logits are recomputed in float64 from h, W and b (as OpenOOD does), the eigenvectors by a
symmetric eigen-decomposition in float64.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


def principal_dim(d: int) -> int:
    """D_p by the authors' rule for features of dimension ``d``."""
    return 1000 if d >= 2048 else 512 if d >= 768 else d // 2


@register
class ViMDetector(PenultimateDetector):
    method = "vim"
    paper = 'Wang, Li, Feng & Zhang, "ViM: out-of-distribution with virtual-logit matching", CVPR 2022'
    help = {"dim": "D_p, the principal subspace; 0 = the authors' rule: 1000 (D >= 2048), 512 (D >= 768), else D // 2"}
    defaults: dict[str, Any] = {**PENULTIMATE_DEFAULTS, "dim": 0}
    order = 80
    state: ClassVar[tuple[str, ...]] = ("origin", "residual", "alpha")

    def _check_config(self) -> None:
        super()._check_config()
        if int(self.config["dim"]) < 0:
            raise InputError(f"{self.method}: dim must be >= 0 (0: the authors' rule), got {self.config['dim']}")

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        w, b = self.head_parameters()
        h = features.double().numpy()
        d = h.shape[1]
        dim = int(self.config["dim"]) or principal_dim(d)
        if not 0 < dim < d:
            raise InputError(f"{self.method}: dim must be in [1, {d - 1}] for {d} features, got {dim}")
        origin = -np.linalg.pinv(w.numpy()) @ b.numpy()
        centred = h - origin
        values, vectors = np.linalg.eigh(centred.T @ centred / len(h))
        residual = vectors[:, np.argsort(-values, kind="stable")[dim:]]  # (D, D - D_p)
        norms = np.linalg.norm(centred @ residual, axis=1)
        if not norms.sum() > 0:
            raise InputError(f"{self.method}: the training features have no residual outside the {dim} principal "
                             "dimensions; lower dim")
        z = h @ w.numpy().T + b.numpy()
        alpha = z.max(axis=1).sum() / norms.sum()
        self.origin, self.residual = torch.from_numpy(origin), torch.from_numpy(np.ascontiguousarray(residual))
        self.alpha = torch.tensor([alpha], dtype=torch.float64)
        self.fitted.update({"dim": dim, "alpha": float(alpha)})

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        h = features.double()
        virtual = float(self.alpha[0]) * torch.linalg.vector_norm((h - self.origin) @ self.residual, dim=1)
        return virtual - torch.logsumexp(self.head_logits(h), dim=1)
