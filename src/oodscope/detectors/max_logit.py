"""Maximum logit (Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song, "Scaling
out-of-distribution detection for real-world settings", ICML 2022).

With the logits f(x) of a classifier of the in-distribution classes
(:class:`~oodscope.upstream.classifier.Classifier`), the score is

    s(x) = -max_k f_k(x),   higher = more out-of-distribution:

the maximum softmax probability without the softmax, whose normalisation hides how large the
winning logit is. ``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

import torch

from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register


@register
class MaxLogitDetector(LogitScoreDetector):
    method = "max-logit"
    paper = ('Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song, "Scaling out-of-distribution '
             'detection for real-world settings", ICML 2022')
    order = 52

    def logit_score(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.max(dim=1).values.double()
