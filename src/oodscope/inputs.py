"""Checks and conversion of user input: images into float tensors (N, C, H, W) in [0, 1], and
feature vectors (or images, flattened) into float arrays (N, D).

Images may be uint8 (0..255, scaled by 1/255) or float in [0, 1]. Float images outside [0, 1]
are refused with a message saying how to pass them: a stack of floats in 0..255 taken as if it
were in [0, 1] would give meaningless scores without a word.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.errors import InputError

FLOAT_TOLERANCE = 1e-4  # float images may stray this far outside [0, 1] (rounding); they are clipped


def _array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "images"):
        x = x.images
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise InputError(f"{what}: cannot be read as an array ({e})") from None
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InputError(f"{what}: unsupported dtype {x.dtype}; expected uint8 or float values")
    if x.ndim == 0 or x.shape[0] == 0:
        raise InputError(f"{what}: empty input (0 samples)")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise InputError(f"{what}: contains NaN or infinite values")
    return x


def _unit_range(x: np.ndarray, what: str) -> np.ndarray:
    """Pixels as float32 in [0, 1]: uint8-like integers scaled by 1/255, floats checked."""
    if np.issubdtype(x.dtype, np.floating):
        lo, hi = float(x.min()), float(x.max())
        if lo < -FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
            raise InputError(
                f"{what}: float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                "pass uint8 images (0..255) or divide float images by 255"
            )
        return np.clip(np.ascontiguousarray(x, dtype=np.float32), 0.0, 1.0)
    if x.dtype != np.uint8 and (x.min() < 0 or x.max() > 255):  # uint8 cannot be outside
        raise InputError(f"{what}: integer images must lie in 0..255")
    return np.ascontiguousarray(x, dtype=np.float32) / 255.0


def as_images(x: Any, what: str = "input") -> torch.Tensor:
    """An ImageSet (``.images``), a NumPy array or a tensor of shape (N, C, H, W) or (N, H, W) as
    a float32 tensor in [0, 1].

    Raises:
        InputError: naming the problem for empty input, wrong rank, unsupported dtype, channels
            other than 1 or 3, NaN / infinite values, or values outside 0..255 / [0, 1].
    """
    x = _array(x, what)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise InputError(f"{what}: expected images of shape (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise InputError(f"{what}: expected 1 or 3 channels on axis 1, got {x.shape[1]} (shape {tuple(x.shape)})")
    return torch.from_numpy(_unit_range(x, what))


def as_features(x: Any, what: str = "input") -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """Feature vectors (N, D), used as they are, or images (N, C, H, W) / (N, H, W), checked as by
    :func:`as_images` and flattened to pixels in [0, 1]. Returns the float32 array and the image
    shape ``(C, H, W)`` (None for feature vectors).

    Raises:
        InputError: as :func:`as_images`, or a rank other than 2, 3 or 4.
    """
    x = _array(x, what)
    if x.ndim == 2:
        return np.ascontiguousarray(x, dtype=np.float32), None
    if x.ndim not in (3, 4):
        raise InputError(f"{what}: expected feature vectors (N, D) or images (N, C, H, W) / (N, H, W), "
                         f"got shape {tuple(x.shape)}")
    images = as_images(x, what).numpy()
    return images.reshape(images.shape[0], -1), tuple(int(s) for s in images.shape[1:])


def check_like(x: torch.Tensor, channels: int, size: tuple[int, int], what: str = "input") -> None:
    """Raise InputError unless ``x`` has the channels and spatial size the detector was fitted on."""
    if x.shape[1] != channels:
        raise InputError(f"{what}: detector was fitted on {channels}-channel images, got {x.shape[1]} channels")
    if tuple(x.shape[-2:]) != tuple(size):
        raise InputError(
            f"{what}: detector was fitted on {size[0]}x{size[1]} images, got {x.shape[-2]}x{x.shape[-1]}"
        )


def as_labels(labels: Any, n: int, what: str = "labels") -> torch.Tensor:
    """Class labels of ``n`` images as an int64 tensor of class indices 0..K-1 (K >= 2).

    Raises:
        InputError: wrong length, non-integer values, negative (unknown) labels or a single class.
    """
    y = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or len(y) != n:
        raise InputError(f"{what}: expected one label per image ({n}), got shape {tuple(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{what}: expected integer class indices, got dtype {y.dtype}")
    if y.min() < 0:
        raise InputError(f"{what}: unknown (negative) labels; every image needs its class")
    if len(np.unique(y)) < 2:
        raise InputError(f"{what}: at least 2 classes are needed, got {len(np.unique(y))}")
    return torch.from_numpy(y.astype(np.int64))
