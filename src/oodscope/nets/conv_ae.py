"""The convolutional autoencoder and variational autoencoder of Hirokawa ("Anomaly detections
using deep learning (II): 2D-convolutional variational autoencoder", n.d.).

Encoder: conv4x4/2 (4 maps) -> LeakyReLU -> conv4x4/2 (16) -> BN -> LeakyReLU -> conv3x3/2 (64)
-> BN -> LeakyReLU -> conv3x3/2 to a 1x1 latent of ``latent`` maps, all without bias; for 28x28
images the maps are 14x14, 7x7, 3x3 and 1x1 (32x32: 16, 8, 3, 1). The decoder mirrors it with
transposed convolutions and ends in a sigmoid (pixels in [0, 1]). The VAE's encoder has two last
convolutions, for the mean mu and for sigma = softplus(.), and samples z = mu + eps * sigma
(the reparameterisation trick); its loss adds KL(N(mu, sigma) || N(0, I)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIZES = (28, 32)  # image sides these networks are built for (other sizes are resized by the detector)


def check_size(size: int) -> None:
    if size not in SIZES:
        raise ValueError(f"the convolutional autoencoder is built for {SIZES} pixel images, got {size}")


def _trunk(channels: int, widths: tuple[int, int, int]) -> nn.Sequential:
    w1, w2, w3 = widths
    return nn.Sequential(
        nn.Conv2d(channels, w1, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(w1, w2, 4, 2, 1, bias=False), nn.BatchNorm2d(w2), nn.LeakyReLU(0.2),
        nn.Conv2d(w2, w3, 3, 2, 0, bias=False), nn.BatchNorm2d(w3), nn.LeakyReLU(0.2),
    )


class ConvDecoder(nn.Module):
    """1x1 latent -> 3x3 -> 7x7 (8x8 for 32) -> 14x14 (16) -> 28x28 (32), sigmoid output."""

    def __init__(self, channels: int, size: int, latent: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        check_size(size)
        w1, w2, w3 = widths
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent, w3, 3, 1, bias=False), nn.BatchNorm2d(w3), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(w3, w2, 3, 2, output_padding=size // 4 - 7, bias=False), nn.BatchNorm2d(w2),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(w2, w1, 4, 2, 1, bias=False), nn.BatchNorm2d(w1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(w1, channels, 4, 2, 1, bias=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z.view(z.shape[0], -1, 1, 1)))


class ConvAE(nn.Module):
    """``forward(x) -> (reconstruction, z)`` with z of shape (N, latent)."""

    def __init__(self, channels: int, size: int, latent: int, widths: tuple[int, int, int] = (4, 16, 64)) -> None:
        super().__init__()
        check_size(size)
        self.encoder = nn.Sequential(_trunk(channels, widths), nn.Conv2d(widths[2], latent, 3, 2, 0, bias=False))
        self.decoder = ConvDecoder(channels, size, latent, widths)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decoder(z), z


class ConvVAE(nn.Module):
    """``forward(x) -> (reconstruction of a sampled z, mu, sigma)``; in eval mode
    ``forward(x, sample=False)`` decodes mu."""

    def __init__(self, channels: int, size: int, latent: int, widths: tuple[int, int, int] = (4, 16, 64)) -> None:
        super().__init__()
        check_size(size)
        self.trunk = _trunk(channels, widths)
        self.conv_mean = nn.Conv2d(widths[2], latent, 3, 2, 0, bias=False)
        self.conv_sigma = nn.Conv2d(widths[2], latent, 3, 2, 0, bias=False)
        self.decoder = ConvDecoder(channels, size, latent, widths)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu and sigma of q(z|x), each (N, latent)."""
        h = self.trunk(x)
        return self.conv_mean(h).flatten(1), F.softplus(self.conv_sigma(h)).flatten(1) + 1e-6

    def forward(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, sigma = self.encode(x)
        z = mu + torch.randn_like(mu) * sigma if sample else mu
        return self.decoder(z), mu, sigma


def kl_to_standard_normal(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per sample."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1)
