"""SHE: simplified Hopfield energy (Zhang, Fu, Chen, Du, Li, Wang, Liu, Han & Zhang, "Out-of-
distribution detection based on in-distribution data patterns memorization with modern Hopfield
energy", ICLR 2023).

The stored pattern of class c is the mean penultimate vector (:mod:`~oodscope.detectors.penultimate`)
of the training images of class c that the classifier classifies correctly (of the ``fit_samples``
drawn; the paper's abstract says the class's training images, the authors' ``generate_avg_feature``
keeps the correctly classified ones, as OpenOOD and pytorch-ood do, and so does oodscope),

    S_c = mean { h(x) : y(x) = c and argmax_k f_k(x) = c },

and an image predicted as class y-hat = argmax_k f_k(x) scores the negated inner product with its
class's pattern,

    s(x) = -h(x) . S_{y-hat},   higher = more out-of-distribution,

the authors' ``simple_compute_score_HE`` with its default ``inner_product`` metric (their energy
-h . S is the score itself, higher for inputs unlike the stored patterns; OpenOOD and pytorch-ood
compute the same). A class none of whose fit images is classified correctly (an undertrained
classifier) has no pattern in the authors' code (it fails; OpenOOD's mean is NaN): here its pattern
is the mean of all its fit images, the paper's own wording of the pattern, and
``fitted["fallback_classes"]`` lists such classes. Fitting refuses a sample in which a class of
the classifier has no image at all. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


@register
class SHEDetector(PenultimateDetector):
    method = "she"
    paper = ('Zhang, Fu, Chen, Du, Li, Wang, Liu, Han & Zhang, "Out-of-distribution detection based on in-distribution '
             'data patterns memorization with modern Hopfield energy", ICLR 2023')
    defaults: dict[str, Any] = PENULTIMATE_DEFAULTS
    order = 75
    state: ClassVar[tuple[str, ...]] = ("patterns",)

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        classes = int(self.upstream.fitted["classes"])
        missing = [c for c in range(classes) if not bool((labels == c).any())]
        if missing:
            raise InputError(f"{self.method}: class{'es' if len(missing) > 1 else ''} {missing} of the classifier's "
                             f"{classes} ha{'ve' if len(missing) > 1 else 's'} no training image among the "
                             f"{len(labels)} fit images; raise fit_samples (0 = all training images)")
        correct = logits.argmax(dim=1) == labels
        f, patterns, fallback = features.double(), [], []
        for c in range(classes):
            chosen = correct & (labels == c)
            if not bool(chosen.any()):
                chosen = labels == c
                fallback.append(c)
            patterns.append(f[chosen].mean(dim=0))
        self.patterns = torch.stack(patterns)
        self.fitted.update({"correct": int(correct.sum()), "fallback_classes": fallback})

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -(features.double() * self.patterns[logits.argmax(dim=1)]).sum(dim=1)
