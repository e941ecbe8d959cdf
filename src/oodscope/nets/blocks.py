"""The pre-activation residual block shared by the backbones (He et al. 2016; Zagoruyko & Komodakis 2016)."""

from __future__ import annotations

import torch
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 with an identity or 1x1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False) if (stride != 1 or c_in != c_out) else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        y = self.conv1(o)
        y = self.conv2(self.dropout(torch.relu(self.bn2(y))))
        return y + skip


def group(c_in: int, c_out: int, n: int, stride: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(*[PreActBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, dropout) for i in range(n)])
