"""``deep-sad``: Deep SAD (Ruff, Vandermeulen, Görnitz, Binder, Müller, Müller & Kloft, "Deep
semi-supervised anomaly detection", ICLR 2020): Deep SVDD with a few labelled anomalies.

With n unlabelled (in-distribution) images x_i and m labelled anomalies x~_j, phi minimises

    1/(n+m) sum_i ||phi(x_i) - c||^2  +  eta/(n+m) sum_j (||phi(x~_j) - c||^2 + eps)^(-1),

pulling the normal data towards c and pushing the known anomalies away (the inverse distance).
The labelled anomalies are mixed into the training set as in the paper; they come from outlier
exposure (another data set) or, in the paper's protocol, from one other class of the same data
set at a ratio gamma_l of the training set (``oodscope bench --oe mnist --oe-classes next
--n-oe 0.01``). Score: ||phi(x) - c||^2, higher = more out-of-distribution. With no labelled
anomalies this is Deep SVDD.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.detectors.base import FitData, Requires
from oodscope.detectors.registry import register
from oodscope.detectors.svdd_core import SVDD_DEFAULTS, SVDD_PRESETS, SVDDBase
from oodscope.errors import InputError

SAD_EPS = 1e-6

# paper: Ruff et al. (2020), MNIST: the autoencoder and Deep SAD 150 epochs each, Adam at 1e-4
# dropping tenfold after epoch 50, batch 128.
SAD_PRESETS: dict[str, dict[str, Any]] = {
    **SVDD_PRESETS,
    "paper": {"pretrain_epochs": 150, "pretrain_milestone": 50 / 150, "epochs": 150, "lr_milestone": 50 / 150,
              "batch_size": 128, "lr": 1e-4, "pretrain_lr": 1e-4, "device": "cuda"},
    "smoke": {**SVDD_PRESETS["smoke"], "lr": 1e-3, "pretrain_lr": 1e-3},  # a visible effect in one epoch
}


@register
class DeepSADDetector(SVDDBase):
    method = "deep-sad"
    paper = ('Ruff, Vandermeulen, Görnitz, Binder, Müller, Müller & Kloft, "Deep semi-supervised anomaly detection", '
             'ICLR 2020')
    requires = Requires(outliers=True)
    defaults: dict[str, Any] = {**SVDD_DEFAULTS, "lr": 1e-4, "pretrain_lr": 1e-4, "eta": 1.0}
    help = {
        "lr": "Adam's learning rate: the papers' (1e-3 was measured for deep-svdd only: lab notebook)",
        "eta": "eta: weight of the labelled anomalies' inverse-distance term",
    }
    presets = SAD_PRESETS
    order = 74

    def _check_config(self) -> None:
        super()._check_config()
        if not self.config["eta"] > 0:
            raise InputError(f"deep-sad: eta must be positive, got {self.config['eta']}")

    def training_set(self, data: FitData) -> tuple[torch.Tensor, torch.Tensor]:
        """The in-distribution images (target 0) and the labelled anomalies (target -1), together."""
        x = torch.cat([data.x, data.outliers])
        targets = torch.cat([torch.zeros(data.x.shape[0]), -torch.ones(data.outliers.shape[0])])
        return x, targets

    def loss(self, dist: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        anomaly = targets < 0
        terms = torch.where(anomaly, float(self.config["eta"]) / (dist + SAD_EPS), dist)
        return terms.mean()
