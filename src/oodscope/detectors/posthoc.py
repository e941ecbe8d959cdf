"""What the post hoc detectors on a classifier share (``msp``, ``energy``, ``max-logit``, ``odin``,
``mahalanobis``, ``gram``, ``ncd``): they need labelled in-distribution images, read a
:class:`~oodscope.upstream.classifier.Classifier` (trained by ``fit`` or shared), and score its
logits (those reading its layers override ``_fit`` and ``_outputs``)."""

from __future__ import annotations

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.adapter import ModelAdapter
from oodscope.upstream.graph import Normalized
from oodscope.upstream.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.errors import InputError


class LogitScoreDetector(Detector):
    """Subclasses set ``method`` (and ``defaults`` beyond the classifier's) and implement
    :meth:`logit_score` (in torch, so the score is differentiable: :meth:`differentiable_score`)
    or :meth:`score_logits`; ``outputs(x)`` returns the score and the logits."""

    requires = Requires(labels=True, upstream=Classifier)
    family = "classifier"
    defaults = CLASSIFIER_DEFAULTS
    choices = CLASSIFIER_CHOICES
    presets = CLASSIFIER_PRESETS
    streams = True  # with a model of yours: on a stream of (images, labels) batches, bounded by fit_samples

    def _stream_sample(self) -> int:
        """The ``fit_samples`` images the detector fits on, drawn from a stream (none for those
        that learn nothing from the training images)."""
        return int(self.config.get("fit_samples", 0))

    def _check_config(self) -> None:
        if "temperature" in self.config and not self.config["temperature"] > 0:
            raise InputError(f"{self.method}: temperature must be positive, got {self.config['temperature']}")

    def _fit(self, data: FitData) -> None:
        """Nothing beyond the classifier, which ``fit`` trained (or was given)."""

    def logit_score(self, logits: torch.Tensor) -> torch.Tensor:
        """The score, higher = more out-of-distribution, from the classifier's logits, in torch."""
        raise NotImplementedError

    def score_logits(self, logits: torch.Tensor) -> np.ndarray:
        """The score from the classifier's logits, as float64."""
        with torch.no_grad():
            return self.logit_score(logits).double().cpu().numpy()

    def differentiable_score(self, x: torch.Tensor) -> torch.Tensor:
        """The score of images ``x`` in [0, 1] as a tensor differentiable in ``x`` (float32
        network), for attacks on the detector (:mod:`oodscope.adversarial`).

        Raises:
            InputError: the detector's score is not a torch function of the logits.
        """
        if type(self).logit_score is LogitScoreDetector.logit_score:
            raise InputError(f"{self.method}: its score is not differentiable in the input here")
        with self.naming_refusals():
            return self.logit_score(self.upstream.differentiable(amp=False)(x))

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        logits = self.upstream.logits(x)
        return {"score": self.score_logits(logits), "logits": logits.numpy()}

    @classmethod
    def scores_as_one_graph(cls) -> bool:
        """Whether the score is exactly :meth:`logit_score` of the classifier's logits (not for detectors
        that read the classifier's layers or perturb their input): then it is one graph (:meth:`_graph`)."""
        return cls.logit_score is not LogitScoreDetector.logit_score and cls._outputs is LogitScoreDetector._outputs

    def _graph(self) -> torch.nn.Module | None:
        """The classifier and :meth:`logit_score` as one module, where the score is exactly that
        (:meth:`scores_as_one_graph`)."""
        if not self.scores_as_one_graph():
            return None
        if isinstance(self.upstream, ModelAdapter):  # a model of yours: export it with its preprocessing yourself
            return None

        def fn(parts: dict[str, torch.nn.Module], xn: torch.Tensor) -> torch.Tensor:
            return self.logit_score(parts["net"](xn).float())

        return Normalized({"net": self.upstream.net}, self.upstream.fitted, fn)
