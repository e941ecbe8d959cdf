"""MC dropout (Gal & Ghahramani, "Dropout as a Bayesian approximation: representing model
uncertainty in deep learning", ICML 2016; Takahashi's lecture notes "Deep learning: reliability of
inference", University of Aizu, n.d.): dropout kept on at inference.

A classifier f with dropout (:class:`~oodscope.upstream.classifier.Classifier`, ``dropout`` 0.5
by default here: the LeNet's dropout after its hidden layer) is trained on the labelled
in-distribution images. At test time its dropout layers stay stochastic and each image is passed
``passes`` times (T, 20 by default), giving T distributions p_t(y | x) = softmax(f_t(x)), each a
draw of the weights from the approximate posterior. The score (``score``) is one of the
uncertainties of :mod:`oodscope.calibration.uncertainty` over the T passes: ``mi`` (default: the
mutual information, the epistemic part, as the notes separate it), ``entropy`` of the mean,
``max-prob`` (negated) or ``variation-ratio``; higher = more out-of-distribution. ``outputs(x)``
holds all four, and as ``logits`` the log of the mean distribution (its arg-max is the MC
prediction, whose accuracy the benchmark records).

The dropout masks are drawn from the random generator seeded with ``seed`` at each call (the
caller's random state is left as it was), so the same images scored in the same batches get the
same scores; like any MC estimate, an image's score varies with the draws, hence slightly with
the other images it is scored with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.calibration import SCORES, pooled_outputs
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register
from oodscope.training.core import batches
from oodscope.errors import InputError

MC_DROPOUT_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "dropout": 0.5, "passes": 20, "score": "mi"}


@register
class MCDropoutDetector(LogitScoreDetector):
    method = "mc-dropout"
    paper = ('Gal & Ghahramani, "Dropout as a Bayesian approximation: representing model uncertainty in deep '
             'learning", ICML 2016')
    help = {
        "dropout": "dropout probability, kept on at inference (the LeNet: after its hidden layer)",
        "passes": "T: stochastic forward passes per image",
        "score": '"mi" (mutual information), "entropy" of the mean, "max-prob" (negated) or "variation-ratio"',
    }
    defaults = MC_DROPOUT_DEFAULTS
    choices = {**LogitScoreDetector.choices, "score": SCORES}
    order = 60

    def _check_config(self) -> None:
        super()._check_config()
        if not 0.0 < self.config["dropout"] < 1.0:
            raise InputError(f"mc-dropout: dropout must be in (0, 1) (no dropout, no MC dropout), got {self.config['dropout']}")
        if self.config["passes"] < 2:
            raise InputError(f"mc-dropout: passes must be >= 2, got {self.config['passes']}")

    def pass_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(T, N, K) softmax outputs of the T stochastic passes over one batch."""
        with torch.no_grad():
            return torch.stack([torch.softmax(self.upstream.taps(x, dropout=True)["logits"].double(), dim=1)
                                for _ in range(int(self.config["passes"]))])

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            return pooled_outputs((self.pass_probabilities(x[idx]) for idx in batches(x.shape[0], 4 * int(self.config["batch_size"]))),
                                  self.config["score"])
