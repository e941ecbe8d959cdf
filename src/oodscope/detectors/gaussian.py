"""``gaussian``: one Gaussian of the normal features (Rippel, Mertens & Merhof, "Modeling the
distribution of normal data in pre-trained deep features for anomaly detection", ICPR 2020). With
f(x) the feature vector of x (:mod:`~oodscope.detectors.feature_base`: a model of yours, or
GEOM's f), mu and Sigma the mean and covariance of the training images' features,

    s(x) = sqrt( (f(x) - mu)^T Sigma_s^-1 (f(x) - mu) ),   higher = more out-of-distribution,

with Sigma_s = (1 - a) Sigma + a (tr(Sigma) / D) I the Ledoit-Wolf shrinkage of Sigma, as the
authors use it (a single feature layer here; they sum the distances of several levels of an
EfficientNet).

Memory is bounded by the feature dimension D, not by the number of images: mu and Sigma come from
running sums in float64 as the features stream past. The shrinkage intensity a is Ledoit & Wolf's
(scikit-learn's ``ledoit_wolf_shrinkage``) estimated on at most ``sample`` of the features, drawn
uniformly with ``seed`` — where it differs from the authors' (all features at once), this bounds
the memory; the covariance it shrinks is the full one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import FitData
from oodscope.detectors.feature_base import FeatureDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError, ModelFileError
from oodscope.model_files import load_modules

PREFIX = "gauss"


@register
class GaussianDetector(FeatureDetector):
    method = "gaussian"
    paper = ('Rippel, Mertens & Merhof, "Modeling the distribution of normal data in pre-trained deep features '
             'for anomaly detection", ICPR 2020')
    defaults: dict[str, Any] = {**FeatureDetector.defaults, "sample": 20000}
    help = {"sample": "at most this many features, drawn with seed, estimate the Ledoit-Wolf shrinkage intensity"}
    order = 61

    def _fit(self, data: FitData) -> None:
        from sklearn.covariance import ledoit_wolf_shrinkage

        keep, g = int(self.config["sample"]), torch.Generator().manual_seed(int(self.config["seed"]))
        n, total, outer, sample, keys = 0, None, None, torch.zeros(0), torch.zeros(0)
        for f in self.features(data.x):
            f64 = f.double()
            n += len(f64)
            total = f64.sum(0) if total is None else total + f64.sum(0)
            outer = f64.T @ f64 if outer is None else outer + f64.T @ f64
            sample = f64 if sample.numel() == 0 else torch.cat([sample, f64])
            keys = torch.cat([keys, torch.rand(len(f64), generator=g)])
            if len(sample) > keep:
                order = torch.argsort(keys)[:keep].sort().values
                sample, keys = sample[order], keys[order]
        if n < 2:
            raise InputError(f"{self.method}: needs at least 2 training images, got {n}")
        mean = total / n
        cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
        a = float(ledoit_wolf_shrinkage(sample.numpy())) if len(sample) > 1 else 1.0
        d = cov.shape[0]
        shrunk = (1 - a) * cov + a * (torch.trace(cov) / d) * torch.eye(d, dtype=torch.float64)
        self.mean, self.precision_matrix = mean, torch.linalg.pinv(shrunk, hermitian=True)
        self.fitted.update({"dim": int(d), "seen": n, "shrinkage": a})

    def _score(self, x: torch.Tensor) -> np.ndarray:
        out = []
        for f in self.features(x):
            z = f.double() - self.mean
            out.append(torch.sqrt(torch.clamp(((z @ self.precision_matrix) * z).sum(1), min=0)))
        return torch.cat(out).numpy() if out else np.zeros(0)

    def summary(self) -> dict[str, Any]:
        return {"shrinkage": self.fitted["shrinkage"]}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"{PREFIX}.mean": self.mean, f"{PREFIX}.precision": self.precision_matrix}

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        load_modules(self.all_modules(), weights, path, extra=(PREFIX,))
        d = int(self.fitted["dim"])
        mean, precision = weights.get(f"{PREFIX}.mean"), weights.get(f"{PREFIX}.precision")
        if mean is None or precision is None or tuple(mean.shape) != (d,) or tuple(precision.shape) != (d, d):
            raise ModelFileError(f"{path}: expected a mean of {d} and a {d} x {d} precision under '{PREFIX}.'")
        self.mean, self.precision_matrix = mean.double(), precision.double()
