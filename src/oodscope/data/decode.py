"""Decoding one image file with Pillow into a numpy array."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from oodscope.errors import DataError

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
"""Pillow modes treated as grayscale."""
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def decode_image(path: Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """Decode ``path`` (a file, or an open binary stream called ``name`` in errors) to ``(H, W)``
    uint8 if grayscale, else ``(H, W, 3)`` uint8 RGB.

    16-bit grayscale is scaled to 8 bits (``v >> 8``) rather than clipped; an
    alpha channel is dropped.

    Raises:
        DataError: the file cannot be opened, is not an image, or is truncated.
    """
    try:
        with Image.open(path) as im:
            im.load()
            return _to_array(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{name or path}: cannot read image ({err})") from err


def _to_array(im: Image.Image) -> np.ndarray:
    """A loaded Pillow image as uint8 gray ``(H, W)`` or RGB ``(H, W, 3)``."""
    if im.mode in _WIDE_MODES:
        wide = np.asarray(im, dtype=np.int64)
        return (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
    if im.mode in GRAY_MODES:
        return np.asarray(im.convert("L"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)
