"""``deep-knn``: deep nearest neighbours on feature vectors (Bergman, Cohen & Hoshen, "Deep nearest
neighbor anomaly detection", 2020; Sun, Ming, Zhu & Li, "Out-of-distribution detection with deep
nearest neighbors", ICML 2022). With z = f(x) / ||f(x)||_2 the L2-normalised feature of x
(:mod:`~oodscope.detectors.feature_base`: a model of yours, or GEOM's f) and B the normalised
features of the in-distribution training images,

    s(x) = || z - z_(k) ||_2,   z_(k) the k-th nearest member of B,   higher = more out-of-distribution,

Sun et al.'s score negated (they report -s, higher = in-distribution, with k = 50 on CIFAR-10 and
its full training set; the default here, k = 1, the nearest training feature, is for one-class use
on a backbone trained elsewhere, where a class has few images). ``normalize=False`` gives Bergman et
al.'s distance on the raw features (they average the k nearest; here it is the k-th). On a
classifier's own penultimate features with its labels, ``knn-clf`` is Sun et al.'s setting.

Memory is bounded by ``bank``: at most that many training features are kept, a uniform sample
without replacement drawn with ``seed`` as the features stream past (each image gets a seeded
random key; the ``bank`` smallest keys are kept), so fitting on any number of images holds
``bank`` x D floats.
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

PREFIX = "knn"


@register
class DeepKNNDetector(FeatureDetector):
    method = "deep-knn"
    paper = ('Sun, Ming, Zhu & Li, "Out-of-distribution detection with deep nearest neighbors", ICML 2022; '
             'Bergman, Cohen & Hoshen, "Deep nearest neighbor anomaly detection", 2020')
    defaults: dict[str, Any] = {**FeatureDetector.defaults, "k": 1, "bank": 50000, "normalize": True}
    help = {
        "k": "the distance to the k-th nearest training feature (Sun et al.: 50; 1 here, for one-class use)",
        "bank": "at most this many training features are kept, a uniform sample drawn with seed (bank x D floats)",
        "normalize": "L2-normalise the features (Sun et al.); false: Bergman et al.'s raw features",
    }
    order = 60

    def _check_config(self) -> None:
        if int(self.config["k"]) < 1 or int(self.config["bank"]) < 1:
            raise InputError(f"{self.method}: k and bank must be positive, got k={self.config['k']}, bank={self.config['bank']}")

    def _prepare(self, f: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(f, dim=1) if self.config["normalize"] else f

    def _fit(self, data: FitData) -> None:
        keep, g = int(self.config["bank"]), torch.Generator().manual_seed(int(self.config["seed"]))
        bank, keys, seen = None, torch.zeros(0), 0
        for f in self.features(data.x):
            seen += len(f)
            bank = self._prepare(f) if bank is None else torch.cat([bank, self._prepare(f)])
            keys = torch.cat([keys, torch.rand(len(f), generator=g)])
            if len(bank) > keep:  # the `keep` smallest keys so far: a uniform sample of what streamed past
                order = torch.argsort(keys)[:keep].sort().values
                bank, keys = bank[order], keys[order]
        if bank is None or len(bank) < int(self.config["k"]):
            raise InputError(f"{self.method}: k={self.config['k']} needs at least that many training images, "
                             f"got {0 if bank is None else len(bank)}")
        self.bank = bank.contiguous()
        self.fitted.update({"bank_size": int(len(bank)), "dim": int(bank.shape[1]), "seen": seen})

    def _score(self, x: torch.Tensor) -> np.ndarray:
        k, out = int(self.config["k"]), []
        for f in self.features(x):
            d = torch.cdist(self._prepare(f).double(), self.bank.double())
            out.append(d.topk(k, dim=1, largest=False).values[:, -1])
        return torch.cat(out).numpy() if out else np.zeros(0)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"{PREFIX}.bank": self.bank}

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        load_modules(self.all_modules(), weights, path, extra=(PREFIX,))
        bank = weights.get(f"{PREFIX}.bank")
        if bank is None or tuple(bank.shape) != (self.fitted["bank_size"], self.fitted["dim"]):
            raise ModelFileError(f"{path}: expected a feature bank of {self.fitted['bank_size']} x {self.fitted['dim']}")
        self.bank = bank.float()
