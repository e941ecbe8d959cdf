"""Okamoto, Suzuki & Matsuo's idea on a classifier: g_theta on the intermediate layers of a
multi-class classifier, trained against a few known outliers (after Okamoto, Suzuki & Matsuo 2021,
"Semi-supervised out-of-distribution detection using the output of intermediate layers in deep
neural networks", where f is a GEOM network; here f is the in-distribution classifier).

f (:class:`~oodscope.upstream.classifier.Classifier`, trained on the labelled in-distribution
images, or shared) is frozen. g_theta (``LayerHead``, Table 1 of the paper, as ``layers``) reads
the taps z_1..z_L of f selected by ``taps`` (default: every feature map and the penultimate
vector; ``softmax`` adds f's predicted distribution) and is trained with binary cross-entropy,
d = 0 on in-distribution images and d = 1 on the known outliers (each batch half and half,
outliers randomly distorted as ``layers`` does by default), for ``g_steps`` Adam steps:

    min_theta  E_in[-log(1 - sigmoid(g(z(x))))] + E_out[-log sigmoid(g(z(x_out)))].

The score is s(x) = sigmoid(g_theta(z_1(x), ..., z_L(x))), higher = more out-of-distribution.
No library offers it; whether it helps over the post hoc scores and over ``oe-classifier``
(the same outliers used to retrain the classifier) is measured in docs/lab/BENCHMARKS.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.detectors.registry import register
from oodscope.training.core import HEAD_DEFAULTS, HEAD_HELP, HEAD_PRESETS, batches, merge_presets, train_bce_head
from oodscope.errors import InputError
from oodscope.nets import LayerHead
from oodscope.transforms.augment import random_affine

LAYERS_CLF_DEFAULTS: dict[str, Any] = {
    **CLASSIFIER_DEFAULTS,
    "taps": [],
    **HEAD_DEFAULTS,
    "g_augment": "outliers",
}


@register
class LayersClfDetector(Detector):
    method = "layers-clf"
    paper = ('after Okamoto, Suzuki & Matsuo, "Semi-supervised out-of-distribution detection using the output of '
             'intermediate layers in deep neural networks", 2021, on a classifier')
    help = {
        "taps": "taps of f read by g_theta; [] = every tap before the logits; softmax = f's predicted distribution",
        **HEAD_HELP,
        "g_augment": 'random affine distortion of the images drawn for g_theta: "none", "outliers" or "both"',
    }
    requires = Requires(outliers=True, labels=True, upstream=Classifier)
    family = "classifier"
    defaults = LAYERS_CLF_DEFAULTS
    choices = {**CLASSIFIER_CHOICES, "g_augment": ("none", "outliers", "both")}
    presets = merge_presets(CLASSIFIER_PRESETS, HEAD_PRESETS)
    order = 68

    @property
    def base(self) -> Classifier:
        """f, the classifier whose taps g_theta reads."""
        return self.upstream

    def _build(self) -> None:
        self.device = self.base.device
        names = [k for k in self.base.tap_shapes if k != "logits"]
        taps = list(self.config["taps"]) or names
        bad = [t for t in taps if t not in (*names, "softmax")]
        if bad:
            raise InputError(f"layers-clf: unknown taps {bad}; the classifier has {names} (and 'softmax')")
        self.fitted["taps"] = taps
        shapes = {t: self.base.tap_shapes["logits" if t == "softmax" else t] for t in taps}
        c = self.config
        torch.manual_seed(int(c["seed"]) + 2)  # same g_theta initialisation whether f is shared or not
        self.head = LayerHead(shapes, c["head_width"], c["head_hidden"], c["head_dropout"]).to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"g": self.head}

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The selected taps of f on images ``x`` in [0, 1] (no gradients into f)."""
        with torch.no_grad():
            taps = self.base.taps(x)
        return {t: torch.softmax(taps["logits"], dim=1) if t == "softmax" else taps[t] for t in self.fitted["taps"]}

    def _fit(self, data: FitData) -> None:
        c, x, o = self.config, data.x, data.outliers
        g = torch.Generator().manual_seed(int(c["seed"]) + 1)
        torch.manual_seed(int(c["seed"]) + 1)
        half = int(c["g_batch"]) // 2

        def draw() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            xb = torch.cat([x[torch.randint(0, x.shape[0], (half,), generator=g)],
                            o[torch.randint(0, o.shape[0], (half,), generator=g)]])
            if c["g_augment"] == "both":
                xb = random_affine(xb, g)
            elif c["g_augment"] == "outliers":
                xb[half:] = random_affine(xb[half:], g)
            d = torch.cat([torch.zeros(half), torch.ones(half)]).to(self.device)
            return self._features(xb), d

        train_bce_head(self.head, draw, c, "layers-clf: training g")

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        self.head.eval()
        scores = []
        with torch.no_grad():
            for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
                scores.append(torch.sigmoid(self.head(self._features(x[idx]))).double().cpu())
        return {"score": torch.cat(scores).numpy(), "logits": self.base.logits(x).numpy()}
