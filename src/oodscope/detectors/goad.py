"""``goad``: classification-based anomaly detection for general data (Bergman & Hoshen, ICLR 2020),
on images with GEOM's geometric transformations (:mod:`oodscope.transforms`).

A network f maps every transformed image T_m(x), m = 1..M, to a feature vector; each
transformation has a centre c_m (the mean of f(T_m x) over the training images). Training
combines cross-entropy of a linear classifier of m on f(T_m x) with the triplet-centre loss

    L_tc = mean over x, m of max(0, ||f(T_m x) - c_m||^2 + s - min_{m' != m} ||f(T_m x) - c_m'||^2),

the centres of a batch taken as its per-transformation means (margin s = ``margin``, weight
``lambda_tc``). At test time P(m' | T_m x) = softmax_m'(-||f(T_m x) - c_m'||^2) with the centres
of the whole training set, and the score is

    s(x) = -sum_m log P(m | T_m x),   higher = more out-of-distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.training.epochs import per_batch, train_epochs
from oodscope.detectors.registry import register
from oodscope.training.core import device_of, model_autocast
from oodscope.errors import InputError
from oodscope.precision import PRECISIONS
from oodscope.nets.goad_net import GoadNet
from oodscope.transforms import TRANSFORM_SETS, GeometricTransforms

GOAD_DEFAULTS: dict[str, Any] = {
    "transforms": "flip-rot4",
    "widths": [16, 32, 64],
    "dim": 32,
    "margin": 1.0,
    "lambda_tc": 0.1,
    "epochs": 2,
    "batch_size": 32,
    "lr": 1e-3,
    "amp": True,
    "precision": "float32",
    "seed": 0,
    "device": "cpu",
    "progress": True,
}

# paper: the 72 transformations of GEOM, 16 epochs, on CUDA (Bergman & Hoshen, section 5).
GOAD_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"transforms": "geom72", "epochs": 16, "dim": 128, "widths": [32, 64, 128], "device": "cuda"},
    "smoke": {"transforms": "rot4", "widths": [8, 8, 8], "epochs": 1},
    "demo": {"epochs": 30},
}


def pairwise_sq(features: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(B, M, D) features and (M, D) centres -> (B, M, M) squared distances ||f(T_m x) - c_m'||^2."""
    return (features.unsqueeze(2) - centres.view(1, 1, *centres.shape)).pow(2).sum(dim=-1)


@register
class GOADDetector(Detector):
    method = "goad"
    paper = 'Bergman & Hoshen, "Classification-based anomaly detection for general data", ICLR 2020'
    help = {
        "transforms": 'T_m: "rot4" (4 rotations), "flip-rot4" (8, with flips) or "geom72" (the paper: 72)',
        "widths": "the three group widths of f",
        "dim": "dimensions of f's feature vectors",
        "margin": "s: margin of the triplet-centre loss",
        "lambda_tc": "weight of the triplet-centre loss beside the cross-entropy",
        "epochs": "passes, each showing every image under all M transformations",
        "batch_size": "images per batch, each under all M transformations",
        "lr": "Adam's learning rate",
    }
    requires = Requires()
    defaults = GOAD_DEFAULTS
    choices = {"transforms": tuple(TRANSFORM_SETS), "precision": PRECISIONS}
    presets = GOAD_PRESETS
    order = 75

    def _check_config(self) -> None:
        if len(self.config["widths"]) != 3 or int(self.config["dim"]) < 1:
            raise InputError("goad: widths must name 3 group widths and dim be positive")

    def _build(self) -> None:
        c = self.config
        self.transforms = GeometricTransforms(c["transforms"])
        self.device = device_of(c["device"])
        self.net = GoadNet(self.fitted["channels"], len(self.transforms), int(c["dim"]), tuple(c["widths"])).to(self.device)
        self.net.register_buffer("centres", torch.zeros(len(self.transforms), int(c["dim"])))
        self.net.to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"goad": self.net}

    def all_transformed(self, x: torch.Tensor) -> torch.Tensor:
        """(B*M, C, H, W): every image under every transformation, image-major."""
        xb = self.normalize(x).to(self.device)
        m = len(self.transforms)
        return torch.stack([self.transforms.one(xb, k) for k in range(m)], dim=1).flatten(0, 1)

    def features(self, x: torch.Tensor, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """f(T_m x) as (B, M, D) and the transformation logits as (B*M, M); in bfloat16 autocast
        while ``training`` with ``amp`` on, else in the model's scoring ``precision``."""
        with model_autocast(self.device, self.config, training):
            f, logits = self.net(self.all_transformed(x))
        return f.float().view(x.shape[0], len(self.transforms), -1), logits.float()

    def _fit(self, data: FitData) -> None:
        c = self.config
        x = data.x
        m = len(self.transforms)
        labels = torch.arange(m, device=self.device)

        def loss_of(idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            f, logits = self.features(x[idx], training=True)
            ce = F.cross_entropy(logits, labels.repeat(len(idx)))
            d = pairwise_sq(f, f.mean(dim=0))
            pos = d.diagonal(dim1=1, dim2=2)
            neg = (d + torch.eye(m, device=self.device) * 1e9).min(dim=2).values
            return ce + float(c["lambda_tc"]) * F.relu(pos + float(c["margin"]) - neg).mean()

        self.net.train()
        train_epochs(self.net.parameters(), x.shape[0], c, "goad: training f", loss_of)
        self.net.eval()
        total = per_batch(x, 256, lambda b: self.features(b)[0].sum(dim=0, keepdim=True))
        self.net.centres.copy_(torch.from_numpy(total.sum(axis=0) / x.shape[0]).float().to(self.device))

    def _score(self, x: torch.Tensor) -> np.ndarray:
        self.net.eval()

        def score(b: torch.Tensor) -> torch.Tensor:
            logp = F.log_softmax(-pairwise_sq(self.features(b)[0], self.net.centres), dim=2)
            return -logp.diagonal(dim1=1, dim2=2).sum(dim=1)

        return per_batch(x, 256, score)
