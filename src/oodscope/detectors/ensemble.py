"""Deep ensemble uncertainty as an OOD detector (Lakshminarayanan et al., NeurIPS 2017; Takahashi's
lecture notes "Deep learning: reliability of inference", University of Aizu, n.d.): the ``members``
(N, 5 by default) classifiers of an :class:`~oodscope.upstream.ensemble_net.Ensemble`, differing
only in their seed, each give p_i(y | x) = softmax(f_i(x)); their mean is the predictive
distribution. The score (``score``) is one of the uncertainties of
:mod:`oodscope.calibration.uncertainty` over the N members: ``mi`` (default: the mutual information
H[p̄] − mean_i H[p_i], the epistemic part: members disagree), ``entropy`` of the mean, ``max-prob``
(negated) or ``variation-ratio``; higher = more out-of-distribution. ``outputs(x)`` holds all four,
and as ``logits`` the log of the mean distribution (the ensemble's prediction, whose accuracy the
benchmark records).

A benchmark gets each member from the upstream cache, so member 0 is the same classifier the
other classifier-based detectors of that seed read and the ensemble costs N − 1 more trainings.
"""

from __future__ import annotations

import numpy as np
import torch

from oodscope.calibration import SCORES, pooled_outputs, uncertainty_scores
from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.classifier import CLASSIFIER_PRESETS
from oodscope.upstream.ensemble_net import ENSEMBLE_DEFAULTS, Ensemble
from oodscope.detectors.registry import register
from oodscope.training.core import batches
from oodscope.errors import InputError


@register
class EnsembleDetector(Detector):
    method = "ensemble"
    paper = ('Lakshminarayanan, Pritzel & Blundell, "Simple and scalable predictive uncertainty estimation using '
             'deep ensembles", NeurIPS 2017')
    help = {"score": '"mi" (mutual information), "entropy" of the mean, "max-prob" (negated) or "variation-ratio"'}
    requires = Requires(labels=True, upstream=Ensemble)
    family = "classifier"
    defaults = {**ENSEMBLE_DEFAULTS, "score": "mi"}
    choices = {**Ensemble.choices, "score": SCORES}
    presets = CLASSIFIER_PRESETS
    order = 61

    def _fit(self, data: FitData) -> None:
        """Nothing beyond the members, which ``fit`` trained (or was given)."""

    def differentiable_score(self, x: torch.Tensor) -> torch.Tensor:
        """The score of images ``x`` in [0, 1], differentiable in ``x`` (float32 members), for
        attacks on the detector; the variation ratio (a count of votes) has no useful gradient."""
        if self.config["score"] == "variation-ratio":
            raise InputError("ensemble: the variation ratio is not differentiable in the input")
        logits = torch.stack([m.differentiable(amp=False)(x) for m in self.upstream.members])
        return uncertainty_scores(torch.softmax(logits.double(), dim=2))[self.config["score"]]

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        probs = (torch.softmax(self.upstream.member_logits(x[idx]).double(), dim=2)
                 for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])))
        return pooled_outputs(probs, self.config["score"])
