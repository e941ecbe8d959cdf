"""Random affine distortions of image batches (rotation, scale, shear, shift), on the fly.

Used to widen a handful of outlier-exposure images into many distinct outliers, in the spirit of
the data augmentation of Hendrycks et al. (2019, "Deep anomaly detection with outlier exposure").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    degrees: float = 30.0,
    scale: tuple[float, float] = (0.8, 1.2),
    shear: float = 0.3,
    shift: float = 0.15,
) -> torch.Tensor:
    """Apply an independent random affine map to every image of ``x`` (N, C, H, W), bilinear, zero fill
    at the normalised background value (the border value of each image)."""
    n = x.shape[0]
    dev = x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(dev)

    a = u(-degrees, degrees) * math.pi / 180
    s = u(*scale)
    sh = u(-shear, shear)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin + sh * cos
    theta[:, 1, 0] = sin
    theta[:, 1, 1] = cos + sh * sin
    theta[:, 0, 2] = u(-shift, shift) * 2
    theta[:, 1, 2] = u(-shift, shift) * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x[:, :, :1, :1]
    out = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + background
