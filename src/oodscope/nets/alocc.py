"""ALOCC's networks (Sabokrou, Khalooei, Fathy & Adeli, CVPR 2018), shaped as in an anonymous blog
post implementing ALOCC in Chainer on MNIST (author, title and date not given; n.d.): the
reconstructor R (four convolutions and four mirrored transposed convolutions, BatchNorm and
LeakyReLU, sigmoid output) and the discriminator D (the same four convolutions and a 1x1 convolution
to one logit, globally averaged). For 28x28 images the maps are 14, 7, 7 and 5
pixels; any even size of at least 12 works."""

from __future__ import annotations

import torch
from torch import nn


def _encoder(channels: int, width: int) -> list[nn.Module]:
    w = width
    layers: list[nn.Module] = []
    for cin, cout, k, s, p in ((channels, w, 4, 2, 1), (w, 2 * w, 4, 2, 1), (2 * w, 4 * w, 3, 1, 1), (4 * w, 8 * w, 3, 1, 0)):
        layers += [nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    return layers


class Reconstructor(nn.Module):
    """R: x -> x' in [0, 1], same shape."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        w = width
        layers = _encoder(channels, w)
        for cin, cout, k, s, p in ((8 * w, 4 * w, 3, 1, 0), (4 * w, 2 * w, 3, 1, 1), (2 * w, w, 4, 2, 1)):
            layers += [nn.ConvTranspose2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        layers.append(nn.ConvTranspose2d(w, channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class Discriminator(nn.Module):
    """D: x -> one logit per image; sigmoid(D(x)) is the probability that x is a real normal image."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(*_encoder(channels, width), nn.Conv2d(8 * width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(1, 2, 3))
