"""The common shape of oodscope backbones: three residual groups and a pooled vector as taps.

``taps(x)`` returns ``{"z1", "z2", "z3", "z4", "logits"}``: the outputs of the three residual
groups (z1..z3, feature maps at full, half and quarter resolution), the globally averaged
vector z4, and the classifier's logits. These are the intermediate layers of Okamoto et al.
(2021), section 4.1, for a Wide-ResNet.
"""

from __future__ import annotations

import torch
from torch import nn

from oodscope.nets.blocks import group

TAP_NAMES = ("z1", "z2", "z3", "z4")


class Backbone(nn.Module):
    """stem conv3x3 -> three residual groups (strides 1, 2, 2) -> BN-ReLU -> avg pool -> linear."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, int, int], blocks: int, dropout: float, stem: int = 16) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.stem = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        self.group1 = group(stem, widths[0], blocks, 1, dropout)
        self.group2 = group(widths[0], widths[1], blocks, 2, dropout)
        self.group3 = group(widths[1], widths[2], blocks, 2, dropout)
        self.bn = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.group1(self.stem(x))
        z2 = self.group2(z1)
        z3 = torch.relu(self.bn(self.group3(z2)))
        z4 = z3.mean(dim=(2, 3))
        return {"z1": z1, "z2": z2, "z3": z3, "z4": z4, "logits": self.fc(z4)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.taps(x)["logits"]
