"""ASH: activation shaping (Djurisic, Bozanic, Ashok & Liu, "Extremely simple activation shaping
for out-of-distribution detection", ICLR 2023).

Each image's penultimate vector h(x) in R^D (:mod:`~oodscope.detectors.penultimate`) is shaped on
its own, with no statistic of the training images: the k = D - round(D p / 100) largest entries are
kept (p = ``percentile``), the others set to 0, and the kept ones are

    "p" (prune):     left as they are,                        a(x) = h_kept
    "b" (binarise):  all set to s1 / k,                        a(x) = (s1 / k) 1_kept
    "s" (scale):     multiplied by exp(s1 / s2),               a(x) = exp(s1 / s2) h_kept

with s1 = sum_j h_j(x) before pruning and s2 = sum_j (h_kept)_j after; the score is the energy
of the head on the shaped vector,

    s(x) = -log sum_k exp((W a(x) + b)_k),   higher = more out-of-distribution

(the paper's energy negated, as :mod:`~oodscope.detectors.energy`). ``outputs(x)`` also returns
the model's unshaped logits.

Defaults: ``variant="s"``, ``percentile=90``, ASH-S@90, the method of the authors' configurations
for CIFAR-10, CIFAR-100 and ImageNet (``config/*_config.yml`` of their code, with the energy
score). Where it is applied: the authors' code shapes the globally pooled features just before the
last linear layer (``apply_ash`` after ``avgpool`` in their ResNet and DenseNet), a (N, C, 1, 1)
tensor whose per-image percentile is that of the vector the head reads; that is the penultimate
vector here (on the residual networks the pooled last block, as theirs; on the LeNet the hidden
layer's ReLU output, which its head reads; on a model of yours the ``penultimate`` module's output).
Ties at the k-th value are broken by ``torch.topk``, as in their code. Where s2 = 0 (an all-zero
vector after pruning; for the non-negative, post-ReLU features the method assumes, an all-zero
vector) exp(s1 / s2) is taken as 1 where their code gives NaN. Fitting reads no training image
(there is no ``fit_samples``): ``fit`` checks that k >= 1 for the head's D.

The ``demo`` preset prunes at p = 65 (the lowest percentile of OpenOOD's ASH sweep), not 90: its
LeNet's penultimate layer has 64 units, of which p = 90 keeps 6, and there uniform-noise images,
which activate more units than digits, get the larger exp(s1 / s2) and rank as in-distribution
(AUROC 0.25 against 8x8 digits 0/1 in the contract test, where ASH-S@65 and the plain energy
give 0.97); the paper's networks shape 342 to 2048 pooled units.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.detectors.penultimate import ShapingDetector
from oodscope.detectors.registry import register
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS


def shaped(h: torch.Tensor, variant: str, k: int) -> torch.Tensor:
    """Each row of ``h`` (float64) shaped: its k largest entries kept, pruned ("p"), binarised
    ("b") or scaled ("s"), the others 0."""
    top, idx = h.topk(k, dim=1)
    s1 = h.sum(dim=1, keepdim=True)
    if variant == "b":
        return torch.zeros_like(h).scatter(1, idx, (s1 / k).expand_as(top))
    out = torch.zeros_like(h).scatter(1, idx, top)
    if variant == "s":
        s2 = top.sum(dim=1, keepdim=True)
        ratio = torch.where(s2 != 0, s1 / torch.where(s2 != 0, s2, torch.ones_like(s2)), torch.zeros_like(s2))
        out = out * torch.exp(ratio)
    return out


@register
class ASHDetector(ShapingDetector):
    method = "ash"
    paper = ('Djurisic, Bozanic, Ashok & Liu, "Extremely simple activation shaping for out-of-distribution '
             'detection", ICLR 2023')
    help = {
        "variant": '"p" (prune), "b" (binarise) or "s" (scale: ASH-S, as configured by the authors)',
        "percentile": "p: each image keeps the entries of its vector above this percentile (the authors: 90)",
    }
    defaults: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "variant": "s", "percentile": 90.0}
    choices = {**ShapingDetector.choices, "variant": ("p", "b", "s")}
    # demo: the demo's LeNet reads a 64-unit hidden layer, of which p = 90 keeps 6 (see the docstring)
    presets = {**CLASSIFIER_PRESETS, "demo": {**CLASSIFIER_PRESETS["demo"], "percentile": 65.0}}
    order = 71

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        a = shaped(features.double(), self.config["variant"], int(self.fitted["kept"]))
        return -torch.logsumexp(self.head_logits(a), dim=1)
