"""GEOM+ (Hendrycks, Mazeika, Kadavath & Song, NeurIPS 2019, as described in section 2.2 of
Okamoto et al. 2021): GEOM trained with outlier exposure.

f learns to recognise the transformation of in-distribution images (cross-entropy) while its
output on transformed outlier images is pulled towards the uniform distribution (cross-entropy
to uniform, weight ``oe_weight``). Scored like GEOM: -sum_j softmax_j(f(T_j x)).
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.detectors.geom import GEOM_DEFAULTS, GeomDetector

GEOM_PLUS_DEFAULTS: dict[str, Any] = {**GEOM_DEFAULTS, "oe_weight": 0.5}


class GeomPlusDetector(GeomDetector):
    method = "geom+"
    uses_outliers = True
    defaults = GEOM_PLUS_DEFAULTS

    def _fit(self, x: torch.Tensor, outliers: torch.Tensor | None) -> None:
        self.train_backbone(x, outliers, float(self.config["oe_weight"]))
