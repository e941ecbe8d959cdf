"""The bias-free LeNet-type network of Deep SVDD (Ruff et al., ICML 2018) and its decoder for
autoencoder pretraining.

Encoder phi (MNIST): conv5x5 (8) -> BN (no affine) -> LeakyReLU -> maxpool2 -> conv5x5 (4) -> BN
-> LeakyReLU -> maxpool2 -> linear to a 32-d representation; CIFAR-10: three such blocks of
32, 64 and 128 maps and a 128-d representation. No layer has a bias term (a bias would let phi
map everything onto the centre c: the "hypersphere collapse" of section 3.3). The decoder
mirrors phi (linear, then upsampling and 5x5 convolutions, sigmoid output) and is used only to
pretrain phi's weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 5, padding=2, bias=False), nn.BatchNorm2d(cout, eps=1e-4, affine=False),
            nn.LeakyReLU(0.01), nn.MaxPool2d(2)]


class SVDDNet(nn.Module):
    """phi: images (C, H, W) -> ``rep_dim`` vector; ``widths`` are the maps of each conv block
    (MNIST: (8, 4); CIFAR-10: (32, 64, 128)). H and W must be divisible by 2**len(widths)."""

    def __init__(self, channels: int, size: tuple[int, int], widths: tuple[int, ...] = (8, 4), rep_dim: int = 32) -> None:
        super().__init__()
        if not widths:
            raise ValueError("SVDDNet needs at least one conv block")
        scale = 2 ** len(widths)
        h, w = size
        if h % scale or w % scale:
            raise ValueError(f"SVDDNet with {len(widths)} pooling blocks needs sides divisible by {scale}, got {h}x{w}")
        layers: list[nn.Module] = []
        for cin, cout in zip((channels, *widths[:-1]), widths):
            layers += _block(cin, cout)
        self.features = nn.Sequential(*layers)
        self.grid = (widths[-1], h // scale, w // scale)
        self.fc = nn.Linear(widths[-1] * (h // scale) * (w // scale), rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class SVDDDecoder(nn.Module):
    """The mirror of :class:`SVDDNet` for autoencoder pretraining (bias-free as well)."""

    def __init__(self, channels: int, grid: tuple[int, int, int], widths: tuple[int, ...], rep_dim: int) -> None:
        super().__init__()
        self.grid = grid
        self.fc = nn.Linear(rep_dim, grid[0] * grid[1] * grid[2], bias=False)
        layers: list[nn.Module] = []
        outs = (*reversed(widths[:-1]), channels)
        for i, (cin, cout) in enumerate(zip(reversed(widths), outs)):
            layers.append(nn.Upsample(scale_factor=2))
            layers.append(nn.Conv2d(cin, cout, 5, padding=2, bias=False))
            if i < len(widths) - 1:
                layers += [nn.BatchNorm2d(cout, eps=1e-4, affine=False), nn.LeakyReLU(0.01)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(z), 0.01).view(z.shape[0], *self.grid)
        return torch.sigmoid(self.net(h))
