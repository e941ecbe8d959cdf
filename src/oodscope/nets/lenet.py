"""A LeNet-style classifier (LeCun et al. 1998, with wider convolutions): two conv5x5-ReLU-maxpool
blocks, a hidden fully connected layer and the class logits. Fast on the CPU for 28x28 images."""

from __future__ import annotations

import torch
from torch import nn


class LeNet(nn.Module):
    """conv5x5(w1)-ReLU-maxpool2 -> conv5x5(w2)-ReLU-maxpool2 -> linear(hidden)-ReLU-(dropout) -> linear(K).

    ``taps(x)`` returns the two feature maps (``z1``, ``z2``), the hidden vector (``z3``) and the
    ``logits``.
    """

    def __init__(self, in_channels: int, num_classes: int, size: tuple[int, int], widths: tuple[int, int] = (32, 64),
                 hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        h, w = size
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, widths[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(widths[0], widths[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        flat = widths[1] * (h // 4) * (w // 4)
        if flat == 0:
            raise ValueError(f"LeNet needs images of at least 4x4 pixels, got {h}x{w}")
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(),
                                    nn.Dropout(dropout) if dropout > 0 else nn.Identity())
        self.fc = nn.Linear(hidden, num_classes)

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.block1(x)
        z2 = self.block2(z1)
        z3 = self.hidden(z2)
        return {"z1": z1, "z2": z2, "z3": z3, "logits": self.fc(z3)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.taps(x)["logits"]
