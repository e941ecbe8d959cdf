"""The intermediate-layer detector of Okamoto, Suzuki & Matsuo (2021), "Semi-supervised
out-of-distribution detection using the output of intermediate layers in deep neural networks".

f is a GEOM network (see ``geom``), frozen after its training. A small network g_theta
(``LayerHead``, Table 1) reads the taps z_1..z_L of f on a transformed image T_y(x) and is
trained with binary cross-entropy to output d=0 on in-distribution images and d=1 on the few
known outliers, with a random transformation y per sample (Algorithm 1). The score of x is
sum_y sigmoid(g_theta(z_1^y, ..., z_L^y)): higher = more out-of-distribution.

``taps`` selects the inputs of g_theta, so the ablations of Table 2 (softmax, z4, z3, z2, z1,
all) are this same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import Detector
from oodscope.detectors.geom import GEOM_DEFAULTS, GeomDetector
from oodscope.detectors.training import HEAD_DEFAULTS, sum_over_transforms, train_bce_head
from oodscope.errors import InputError
from oodscope.nets import LayerHead
from oodscope.transforms.augment import random_affine

TAP_CHOICES = ("z1", "z2", "z3", "z4", "softmax", "ptrue")

LAYERS_DEFAULTS: dict[str, Any] = {
    **GEOM_DEFAULTS,
    "taps": ["z3", "z4", "ptrue"],  # the paper's "all" is ["z1", "z2", "z3", "z4"]; see docs/BENCHMARKS.md
    **HEAD_DEFAULTS,
    "g_mixup": 0.0,  # fraction of each batch replaced by ID/outlier mixtures with soft labels (off: no gain, BENCHMARKS.md)
    "g_augment": "outliers",  # random affine distortion of drawn images: "none", "outliers" or "both"
}


class LayersDetector(Detector):
    method = "layers"
    uses_outliers = True
    defaults = LAYERS_DEFAULTS

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        bad = [t for t in self.config["taps"] if t not in TAP_CHOICES]
        if bad or not self.config["taps"]:
            raise InputError(f"layers: taps must be a non-empty subset of {TAP_CHOICES}, got {self.config['taps']}")
        self.base: GeomDetector | None = None

    def geom_config(self) -> dict[str, Any]:
        return {k: self.config[k] for k in GEOM_DEFAULTS}

    def use_base(self, base: GeomDetector) -> "LayersDetector":
        """Reuse an already fitted GEOM detector as f (it must have this detector's GEOM settings)."""
        if base.config | {"progress": None} != self.geom_config() | {"progress": None}:
            raise InputError("layers: the given GEOM detector was fitted with different settings")
        self.base = base
        return self

    # -- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        if self.base is None or self.base.fitted != self.fitted:
            self.base = GeomDetector(**self.geom_config())
            self.base.fitted = self.fitted
            self.base._build()
            self._base_trained = False
        else:
            self._base_trained = True
        self.device = self.base.device
        with torch.no_grad():
            probe = torch.zeros(2, self.fitted["channels"], *self.fitted["size"], device=self.device)
            self.base.net.eval()
            y0 = torch.zeros(2, dtype=torch.long, device=self.device)
            shapes = {k: tuple(v.shape[1:]) for k, v in self._features(probe, y0).items()}
        c = self.config
        torch.manual_seed(int(c["seed"]) + 2)  # same g_theta initialisation whether f is shared or not
        self.head = LayerHead(shapes, c["head_width"], c["head_hidden"], c["head_dropout"]).to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"f": self.base.net, "g": self.head}

    def _features(self, xt: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The selected taps of f on the transformed batch ``xt``; ``y`` holds the applied transformations.

        ``softmax`` is f's predicted distribution over transformations; ``ptrue`` is the log-probability
        f gives the transformation actually applied (the per-transformation term of GEOM's score).
        """
        taps = self.base.taps(xt)
        feats = {}
        for t in self.config["taps"]:
            if t == "softmax":
                feats[t] = torch.softmax(taps["logits"].float(), dim=1)
            elif t == "ptrue":
                logp = torch.log_softmax(taps["logits"].float(), dim=1)
                feats[t] = logp.gather(1, y.view(-1, 1))
            else:
                feats[t] = taps[t].float()
        return feats

    # -- training --------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, outliers: torch.Tensor | None) -> None:
        if not self._base_trained:
            self.base.train_backbone(x)
        self.base.net.eval()
        self._train_head(x, outliers)

    def _train_head(self, x: torch.Tensor, o: torch.Tensor) -> None:
        c = self.config
        g = torch.Generator().manual_seed(int(c["seed"]) + 1)
        torch.manual_seed(int(c["seed"]) + 1)
        k, half = len(self.base.transforms), int(c["g_batch"]) // 2
        n_mix = int(round(c["g_mixup"] * 2 * half))

        def draw() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            xi = torch.randint(0, x.shape[0], (half,), generator=g)
            oi = torch.randint(0, o.shape[0], (half,), generator=g)
            xb = torch.cat([self.base.augment(x[xi], g), o[oi]])
            if c["g_augment"] == "both":
                xb = random_affine(xb, g)
            elif c["g_augment"] == "outliers":
                xb[half:] = random_affine(xb[half:], g)
            d = torch.cat([torch.zeros(half), torch.ones(half)])
            if n_mix:
                lam = torch.rand(n_mix, generator=g)
                a = x[torch.randint(0, x.shape[0], (n_mix,), generator=g)]
                b = o[torch.randint(0, o.shape[0], (n_mix,), generator=g)]
                xb[:n_mix] = (1 - lam.view(-1, 1, 1, 1)) * a + lam.view(-1, 1, 1, 1) * b
                d[:n_mix] = lam
            xb, d = self.normalize(xb).to(self.device), d.to(self.device)
            y = torch.randint(0, k, (2 * half,), generator=g).to(self.device)
            return self._features(self.base.transforms.apply(xb, y), y), d

        train_bce_head(self.head, draw, c, "layers: training g")

    # -- scoring ---------------------------------------------------------------------------
    def _score(self, x: torch.Tensor) -> np.ndarray:
        self.base.net.eval()
        self.head.eval()

        def term(xt: torch.Tensor, k: int) -> torch.Tensor:
            y = torch.full((xt.shape[0],), k, dtype=torch.long, device=self.device)
            return torch.sigmoid(self.head(self._features(xt, y)))

        bs = 4 * int(self.config["batch_size"])
        return sum_over_transforms(x, self.normalize, self.device, self.base.transforms, bs, term)
