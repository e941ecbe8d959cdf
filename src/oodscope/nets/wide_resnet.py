"""Wide residual network WRN-depth-width (Zagoruyko & Komodakis 2016), as used by GEOM and Okamoto et al. (WRN-16-4, dropout 0.3)."""

from __future__ import annotations

from oodscope.nets.backbone import Backbone


class WideResNet(Backbone):
    def __init__(self, in_channels: int, num_classes: int, depth: int = 16, width: int = 4, dropout: float = 0.3) -> None:
        if (depth - 4) % 6:
            raise ValueError(f"Wide-ResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        super().__init__(in_channels, num_classes, (16 * width, 32 * width, 64 * width), n, dropout)
