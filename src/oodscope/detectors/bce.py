"""BCE (Ruff, Vandermeulen, Franks, Müller & Kloft 2020, "Rethinking assumptions in deep anomaly
detection"): a binary classifier of in-distribution (d=0) against outlier-exposure images (d=1).

As in Okamoto et al. (2021, section 4.1) it uses the same g_theta architecture as the
intermediate-layer detector (``LayerHead``, Table 1), here applied to the transformed image
itself instead of f's features, with a random GEOM transformation per training sample.
Score: sum_j sigmoid(g_theta(T_j x)), higher = more out-of-distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.upstream.graph import TransformSum
from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.registry import register
from oodscope.training.core import (HEAD_DEFAULTS, HEAD_HELP, HEAD_PRESETS, device_of, merge_presets, sum_over_transforms,
                                    train_bce_head)
from oodscope.nets import LayerHead
from oodscope.transforms import TRANSFORM_SETS, GeometricTransforms
from oodscope.transforms.augment import cifar_augment, random_affine

BCE_DEFAULTS: dict[str, Any] = {
    "transforms": "flip-rot4",
    **HEAD_DEFAULTS,
    "g_augment": "none",
    "augment": "none",
    "batch_size": 128,
    "seed": 0,
    "device": "cpu",
    "progress": True,
}

BCE_HELP: dict[str, str] = {
    **HEAD_HELP,
    "transforms": 'T_j: "rot4" (4 rotations), "flip-rot4" (8, with flips) or "geom72" (the paper: 72)',
    "g_augment": '"none", or "outliers": random affine distortion of the drawn outliers',
    "augment": '"none", or "cifar": the CIFAR training augmentation of section 4.1 for in-distribution images',
    "batch_size": "scoring batches hold 4 x batch_size images (g_theta trains on batches of g_batch)",
}

# The transformations and batch size follow GEOM's presets (paper: the 72 transformations, on CUDA).
BCE_PRESETS = merge_presets({
    "cpu": {},
    "paper": {"transforms": "geom72", "batch_size": 128, "device": "cuda"},
    "smoke": {"transforms": "rot4"},
    "demo": {"transforms": "flip-rot4", "batch_size": 64},
}, HEAD_PRESETS)


@register
class BCEDetector(Detector):
    method = "bce"
    paper = 'Ruff, Vandermeulen, Franks, Müller & Kloft, "Rethinking assumptions in deep anomaly detection", arXiv 2020'
    help = BCE_HELP
    requires = Requires(outliers=True)
    defaults = BCE_DEFAULTS
    choices = {"transforms": tuple(TRANSFORM_SETS), "g_augment": ("none", "outliers"), "augment": ("none", "cifar")}
    presets = BCE_PRESETS
    order = 30

    def _build(self) -> None:
        c = self.config
        self.transforms = GeometricTransforms(c["transforms"])
        self.device = device_of(c["device"])
        shape = (self.fitted["channels"], *self.fitted["size"])
        self.head = LayerHead({"x": shape}, c["head_width"], c["head_hidden"], c["head_dropout"]).to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"g": self.head}

    def _fit(self, data: FitData) -> None:
        x, outliers = data.x, data.outliers
        c = self.config
        g = torch.Generator().manual_seed(int(c["seed"]))
        torch.manual_seed(int(c["seed"]))
        k, half = len(self.transforms), int(c["g_batch"]) // 2
        d = torch.cat([torch.zeros(half), torch.ones(half)]).to(self.device)

        def draw() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            xi = torch.randint(0, x.shape[0], (half,), generator=g)
            oi = torch.randint(0, outliers.shape[0], (half,), generator=g)
            ob = outliers[oi]
            if c["g_augment"] == "outliers":
                ob = random_affine(ob, g)
            xi_img = x[xi] if c["augment"] == "none" else cifar_augment(x[xi], g)
            xb = self.normalize(torch.cat([xi_img, ob])).to(self.device)
            y = torch.randint(0, k, (2 * half,), generator=g).to(self.device)
            return {"x": self.transforms.apply(xb, y)}, d

        train_bce_head(self.head, draw, c, "bce: training g")

    def _score(self, x: torch.Tensor) -> np.ndarray:
        self.head.eval()
        bs = 4 * int(self.config["batch_size"])
        return sum_over_transforms(
            x, self.normalize, self.device, self.transforms, bs, lambda xt, k: torch.sigmoid(self.head({"x": xt}))
        )

    def _graph(self) -> torch.nn.Module:
        def term(parts: dict[str, torch.nn.Module], xt: torch.Tensor, k: int) -> torch.Tensor:
            return torch.sigmoid(parts["g"]({"x": xt}))

        return TransformSum({"g": self.head}, self.transforms, self.fitted, term)
