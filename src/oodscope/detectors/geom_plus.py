"""GEOM+ (Hendrycks, Mazeika, Kadavath & Song, NeurIPS 2019, as described in section 2.2 of
Okamoto et al. 2021): GEOM trained with outlier exposure.

f learns to recognise the transformation of in-distribution images (cross-entropy) while its
output on transformed outlier images o is pulled towards the uniform distribution:

    L = CE(f(T_y x), y) + w * mean_j(-log softmax_j(f(T_y' o))),   w = ``oe_weight``.

Scored like GEOM: s(x) = -sum_j softmax_j(f(T_j x)). Its f depends on the outliers, so it is
the detector's own network, not a shared upstream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import IMAGE_FACTS, Detector, FitData, Requires
from oodscope.upstream.geom_net import GEOM_CHOICES, GEOM_DEFAULTS, GEOM_HELP, GEOM_PRESETS, GeomNet
from oodscope.detectors.registry import register

GEOM_PLUS_DEFAULTS: dict[str, Any] = {**GEOM_DEFAULTS, "oe_weight": 0.5}


@register
class GeomPlusDetector(Detector):
    method = "geom+"
    paper = ('Hendrycks, Mazeika, Kadavath & Song, "Using self-supervised learning can improve model robustness '
             'and uncertainty", NeurIPS 2019')
    help = {**GEOM_HELP, "oe_weight": "w: weight of the outliers' cross-entropy to the uniform distribution"}
    requires = Requires(outliers=True)
    defaults = GEOM_PLUS_DEFAULTS
    choices = GEOM_CHOICES
    presets = GEOM_PRESETS
    order = 20

    def _build(self) -> None:
        facts = self.fitted.get("f") or {k: self.fitted[k] for k in IMAGE_FACTS}
        self.f = GeomNet(**GeomNet.settings_from(self.config)).restore(facts)

    @property
    def transforms(self):
        """f's transformations."""
        return self.f.transforms

    def _modules(self) -> dict[str, torch.nn.Module]:
        return self.f.modules()

    def _fit(self, data: FitData) -> None:
        self.f.fit(data.x, outliers=data.outliers, outlier_weight=float(self.config["oe_weight"]),
                   desc="geom+: training f")
        self.fitted["f"] = self.f.fitted

    def _score(self, x: torch.Tensor) -> np.ndarray:
        return self.f.geom_score(x)

    def _graph(self) -> torch.nn.Module:
        return self.f.geom_graph()
