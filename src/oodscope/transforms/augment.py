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


def _per_sample(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) < p).to(device).view(-1, 1, 1, 1)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(device).view(-1, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def random_resized_crop(x: torch.Tensor, generator: torch.Generator | None = None, scale: tuple[float, float] = (0.5, 1.0)) -> torch.Tensor:
    """Crop a random region of ``scale`` of the area (aspect ratio 3/4..4/3) and resize it back."""
    n, dev = x.shape[0], x.device
    area = _uniform(n, *scale, generator, dev).view(-1)
    logr = _uniform(n, math.log(3 / 4), math.log(4 / 3), generator, dev).view(-1)
    sw = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
    sh = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
    tx = (_uniform(n, -1, 1, generator, dev).view(-1)) * (1 - sw)
    ty = (_uniform(n, -1, 1, generator, dev).view(-1)) * (1 - sh)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = sw, sh, tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, generator: torch.Generator | None = None, strength: float = 0.4, hue: float = 0.1) -> torch.Tensor:
    """Random brightness, contrast, saturation (factors in 1 +- strength) and hue (rotation by up to
    +-hue of a turn in YIQ space) of RGB images in [0, 1]."""
    n, dev = x.shape[0], x.device
    x = x * _uniform(n, 1 - strength, 1 + strength, generator, dev)
    m = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = m + (x - m) * _uniform(n, 1 - strength, 1 + strength, generator, dev)
    g = _gray(x)
    x = g + (x - g) * _uniform(n, 1 - strength, 1 + strength, generator, dev)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev)
    a = _uniform(n, -hue, hue, generator, dev).view(-1) * 2 * math.pi
    rot = torch.zeros(n, 3, 3, device=dev)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)
    mat = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # (n, 3, 3)
    x = torch.einsum("nij,njhw->nihw", mat, x)
    return x.clamp(0, 1)


def gaussian_blur(x: torch.Tensor, generator: torch.Generator | None = None, sigma: tuple[float, float] = (0.1, 2.0), size: int = 3) -> torch.Tensor:
    """Blur every image with a separable Gaussian of a random sigma."""
    n, c, dev = x.shape[0], x.shape[1], x.device
    s = _uniform(n, *sigma, generator, dev).view(-1, 1)
    r = torch.arange(size, device=dev, dtype=x.dtype) - size // 2
    k = torch.exp(-(r.view(1, -1) ** 2) / (2 * s**2))
    k = k / k.sum(dim=1, keepdim=True)  # (n, size)
    pad = size // 2
    y = F.pad(x, (pad, pad, pad, pad), mode="reflect").reshape(1, n * c, x.shape[2] + 2 * pad, x.shape[3] + 2 * pad)
    kh = k.repeat_interleave(c, dim=0).view(n * c, 1, 1, size)
    kv = k.repeat_interleave(c, dim=0).view(n * c, 1, size, 1)
    y = F.conv2d(F.conv2d(y, kh, groups=n * c), kv, groups=n * c)
    return y.view_as(x)


def cifar_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The CIFAR training augmentation of Okamoto et al. (2021), section 4.1, each step random per
    image: crop-and-resize, colour jitter (p=0.8), grayscale (p=0.2), Gaussian blur (p=0.5).
    ``x`` holds RGB images in [0, 1]."""
    n, dev = x.shape[0], x.device
    x = random_resized_crop(x, generator)
    x = torch.where(_per_sample(n, 0.8, generator, dev), color_jitter(x, generator), x)
    if x.shape[1] == 3:
        x = torch.where(_per_sample(n, 0.2, generator, dev), _gray(x).expand_as(x), x)
    x = torch.where(_per_sample(n, 0.5, generator, dev), gaussian_blur(x, generator), x)
    return x
