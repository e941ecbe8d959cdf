"""Changing the channel count and size of uint8 image stacks: :func:`convert`."""

from __future__ import annotations

import numpy as np
from PIL import Image

from oodscope.errors import DataError

# ITU-R BT.601 luma weights 0.299 / 0.587 / 0.114 in 16-bit fixed point, the same
# integers Pillow's RGB -> "L" conversion uses, so results match Image.convert("L").
_LUMA_FIXED = (19595, 38470, 7471)
_BLOCK = 4096  # images per block when converting to gray (bounds temporary memory)


def convert(images: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """Convert uint8 ``(N, C, H, W)`` images to ``(N, channels, size[0], size[1])``.

    RGB becomes gray by ITU-R 601 luma (``0.299 R + 0.587 G + 0.114 B``, rounded);
    gray becomes RGB by repeating the channel. Resizing is Pillow bilinear per
    image (antialiased when shrinking). Returns ``images`` itself when nothing
    needs to change.

    Raises:
        DataError: ``images`` is not a uint8 4-D array with 1 or 3 channels, or
            ``size`` / ``channels`` are invalid.
    """
    _check(images, size, channels)
    height, width = int(size[0]), int(size[1])
    if images.shape[1] == channels and images.shape[2:] == (height, width):
        return images
    out = images
    if out.shape[1] == 3 and channels == 1:
        out = rgb_to_gray(out)
    if out.shape[2:] != (height, width):
        out = _resize(out, height, width)
    if out.shape[1] == 1 and channels == 3:
        out = np.repeat(out, 3, axis=1)
    return np.ascontiguousarray(out)


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """``(N, 3, H, W)`` uint8 RGB -> ``(N, 1, H, W)`` uint8 luma (ITU-R 601, rounded).

    Identical to Pillow's ``Image.convert("L")``.
    """
    out = np.empty((images.shape[0], 1, *images.shape[2:]), dtype=np.uint8)
    for start in range(0, images.shape[0], _BLOCK):
        block = images[start : start + _BLOCK].astype(np.uint32)
        luma = block[:, 0] * _LUMA_FIXED[0] + block[:, 1] * _LUMA_FIXED[1] + block[:, 2] * _LUMA_FIXED[2]
        luma += 1 << 15
        luma >>= 16
        out[start : start + _BLOCK, 0] = luma
    return out


def resize_one(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize one ``(C, H, W)`` uint8 image with Pillow's bilinear filter."""
    if image.shape[1:] == (height, width):
        return image
    if image.shape[0] == 1:
        pil = Image.fromarray(np.ascontiguousarray(image[0]))
        return np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR))[None]
    pil = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
    return np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def _resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize every image of a stack."""
    out = np.empty((images.shape[0], images.shape[1], height, width), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = resize_one(image, height, width)
    return out


def _check(images: np.ndarray, size: tuple[int, int], channels: int) -> None:
    """Validate the arguments of :func:`convert`."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"convert: images must be a uint8 array of shape (N, C, H, W), got {got}")
    if images.shape[1] not in (1, 3):
        raise DataError(f"convert: images must have 1 or 3 channels, got shape {images.shape}")
    if channels not in (1, 3):
        raise DataError(f"convert: channels must be 1 or 3, got {channels!r}")
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise DataError(f"convert: size must be two positive integers (height, width), got {size!r}")
