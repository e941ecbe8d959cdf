"""A CPU-fast residual CNN: one pre-activation block per group (a ResNet-8), same taps as the Wide-ResNet."""

from __future__ import annotations

from oodscope.nets.backbone import Backbone


class SmallResNet(Backbone):
    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, int, int] = (32, 64, 128), dropout: float = 0.0) -> None:
        super().__init__(in_channels, num_classes, tuple(widths), 1, dropout, stem=min(16, widths[0]))
