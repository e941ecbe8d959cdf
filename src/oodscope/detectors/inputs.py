"""Checks and conversion of user images into float tensors (N, C, H, W) in [0, 1]."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.errors import InputError


def as_images(x: Any, what: str = "input") -> torch.Tensor:
    """Accept an ImageSet (``.images``), a NumPy array or a tensor of shape (N, C, H, W) or (N, H, W).

    uint8 arrays are scaled by 1/255; float arrays are taken to be in [0, 1] already.
    Raises InputError naming the problem for empty input, wrong rank, unsupported dtype,
    more than 4 channels, or NaN / infinite values.
    """
    if hasattr(x, "images"):
        x = x.images
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise InputError(f"{what}: cannot be read as an array of images ({e})") from None
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InputError(f"{what}: unsupported dtype {x.dtype}; expected uint8 or float images")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise InputError(f"{what}: expected images of shape (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{what}: empty input (0 images)")
    if x.shape[1] not in (1, 3):
        raise InputError(f"{what}: expected 1 or 3 channels on axis 1, got {x.shape[1]} (shape {tuple(x.shape)})")
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise InputError(f"{what}: contains NaN or infinite values")
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    else:
        if x.min() < 0 or x.max() > 255:
            raise InputError(f"{what}: integer images must lie in 0..255")
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) / 255.0
    return t


def check_like(x: torch.Tensor, channels: int, size: tuple[int, int], what: str = "input") -> None:
    """Raise InputError unless ``x`` has the channels and spatial size the detector was fitted on."""
    if x.shape[1] != channels:
        raise InputError(f"{what}: detector was fitted on {channels}-channel images, got {x.shape[1]} channels")
    if tuple(x.shape[-2:]) != tuple(size):
        raise InputError(
            f"{what}: detector was fitted on {size[0]}x{size[1]} images, got {x.shape[-2]}x{x.shape[-1]}"
        )
