"""GOAD's network (Bergman & Hoshen, ICLR 2020): a backbone mapping a transformed image to a
feature vector f(T_m x), and a linear classifier of the transformation m on that vector."""

from __future__ import annotations

import torch
from torch import nn

from oodscope.nets.build import build_backbone


class GoadNet(nn.Module):
    """``forward(x) -> (features (N, dim), transformation logits (N, n_transforms))``."""

    def __init__(self, channels: int, n_transforms: int, dim: int = 32, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        self.features = build_backbone("small", channels, dim, widths=tuple(widths), dropout=0.0)
        self.head = nn.Linear(dim, n_transforms)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)
