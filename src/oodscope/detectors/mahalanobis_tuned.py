"""The Mahalanobis detector as Lee, Lee, Lee & Shin (NeurIPS 2018) tune it: the layer distances
M_l of ``mahalanobis`` combined by a logistic regression fitted on known outliers, and the input
pre-processing step eps chosen with them.

    s(x) = w . z(x) + b,   z_l(x) = (M_l(x~_l) - m_l) / s_l,

where m_l, s_l standardise each layer's distance on held-out in-distribution images, and w, b
are a logistic regression (scikit-learn, balanced class weights) separating those in-distribution
images (label 0) from the known outliers (label 1); higher = more out-of-distribution. eps is
the value of ``eps_grid`` whose regression reaches the highest 2-fold cross-validated AUROC on
the same images (ties: the smaller eps); it is recorded in the saved model.

This needs OOD data to tune, the weakness of the method that Hirono Okamoto's Deep Learning JP
seminar slides "[DL輪読会]ICLR2020の分布外検知速報" (out-of-distribution detection papers at ICLR 2020, 2019)
point out. The outliers are those ``fit`` receives: in oodscope's ``split-mnist`` benchmark, a few
images of EMNIST letters (``--oe``, ``--n-oe``), never the test set's OOD digits. Its
in-distribution images are at most ``tune_samples`` of the validation images given to ``fit`` (else
of the training images).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import FitData, Requires
from oodscope.upstream.classifier import Classifier
from oodscope.detectors.mahalanobis import MAHALANOBIS_DEFAULTS, MahalanobisDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError
from oodscope.inputs import as_images

TUNED_DEFAULTS: dict[str, Any] = {
    **MAHALANOBIS_DEFAULTS,
    "eps_grid": [0.0, 0.0005, 0.001, 0.002, 0.005, 0.01],
    "tune_samples": 1000,
}


def cv_auroc(z: np.ndarray, y: np.ndarray, seed: int) -> float:
    """2-fold stratified cross-validated AUROC of a balanced logistic regression (0.5 if too few)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    if min(np.sum(y == 0), np.sum(y == 1)) < 2:
        return 0.5
    aucs = []
    for train, test in StratifiedKFold(2, shuffle=True, random_state=seed).split(z, y):
        lr = LogisticRegression(class_weight="balanced", max_iter=1000).fit(z[train], y[train])
        aucs.append(roc_auc_score(y[test], lr.decision_function(z[test])))
    return float(np.mean(aucs))


@register
class MahalanobisTunedDetector(MahalanobisDetector):
    method = "mahalanobis-tuned"
    paper = ('Lee, Lee, Lee & Shin, "A simple unified framework for detecting out-of-distribution samples and '
             'adversarial attacks", NeurIPS 2018 (tuned on outliers)')
    help = {
        "eps": "unused: eps is chosen from eps_grid with the known outliers",
        "combine": '"sum": every layer, combined by the logistic regression; "last": the penultimate layer alone',
        "eps_grid": "eps tried, in pixels in [0, 1]: the best 2-fold cross-validated AUROC on the outliers wins",
        "tune_samples": "at most this many in-distribution images (validation, else training) for the tuning",
    }
    requires = Requires(labels=True, upstream=Classifier, outliers=True)
    defaults = TUNED_DEFAULTS
    order = 55
    stats = ("loc", "scale", "coef", "intercept")

    def _check_config(self) -> None:
        super()._check_config()
        grid = self.config["eps_grid"]
        if not grid or any(not isinstance(e, (int, float)) or e < 0 for e in grid):
            raise InputError(f"{self.method}: eps_grid must be a non-empty list of numbers >= 0, got {grid}")
        if self.config["tune_samples"] < 2:
            raise InputError(f"{self.method}: tune_samples must be >= 2, got {self.config['tune_samples']}")

    def _fit_stream_combination(self, data: FitData) -> None:
        """The tuning on the validation images, else on ``tune_samples`` training images drawn from the stream."""
        held = data.validation
        if held is None:
            held = as_images(data.x.sample(int(self.config["tune_samples"]), int(self.config["seed"]))[0], "training images")
        self._fit_combination(held, data)

    def _fit_combination(self, held_out: torch.Tensor, data: FitData) -> None:
        from sklearn.linear_model import LogisticRegression

        n = min(int(self.config["tune_samples"]), len(held_out))
        pick = np.sort(np.random.default_rng(int(self.config["seed"])).choice(len(held_out), n, replace=False))
        inside, outside = held_out[torch.from_numpy(pick)], data.outliers
        y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
        best: tuple[float, float, np.ndarray] | None = None
        for eps in sorted(float(e) for e in self.config["eps_grid"]):
            self.fitted["eps"] = eps
            id_scores = self.layer_scores(inside)
            self.standardise(id_scores)
            z = self.standardised(np.r_[id_scores, self.layer_scores(outside)])
            auc = cv_auroc(z, y, int(self.config["seed"]))
            if best is None or auc > best[0]:
                best = (auc, eps, id_scores)
        auc, eps, id_scores = best
        self.fitted["eps"], self.fitted["tune_auroc"] = eps, round(100 * auc, 4)
        self.standardise(id_scores)
        z = self.standardised(np.r_[id_scores, self.layer_scores(outside)])
        lr = LogisticRegression(class_weight="balanced", max_iter=1000).fit(z, y)
        self.coef = torch.from_numpy(lr.coef_[0].astype(np.float64))
        self.intercept = torch.from_numpy(lr.intercept_.astype(np.float64))

    def standardised(self, scores: np.ndarray) -> np.ndarray:
        """Layer distances standardised with loc and scale."""
        return (scores - self.loc.numpy()) / self.scale.numpy()

    def combine(self, scores: np.ndarray) -> np.ndarray:
        return self.standardised(scores) @ self.coef.numpy() + float(self.intercept[0])
