"""Loading a directory of image files as an ImageSet.

Two layouts are understood:

* ``path/<class>/<image>``: every sub-directory that holds images is a class
  (classes sorted by name, labels index into them);
* ``path/<image>``: all images at the top level, unlabelled (labels ``-1``,
  ``classes == []``).

Only direct children are read (no deeper recursion). Files ending in ``.png``,
``.jpg`` or ``.jpeg`` (any case) count as images; names starting with ``.`` are
skipped. Files are read in sorted order, so results are deterministic. If every
image is grayscale the set has 1 channel, otherwise all images become RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from oodscope.data.conversion import convert, resize_one
from oodscope.data.decode import decode_image
from oodscope.data.imageset import ImageSet
from oodscope.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})


def load_folder(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> ImageSet:
    """Load an image folder (see the module docstring for the layouts).

    Args:
        path: The directory.
        size: ``(height, width)`` to resize every image to (bilinear). Without it
            all images must already share one size.
        channels: 1 or 3 to force gray or RGB; default: 1 if every image is
            grayscale, else 3.

    Raises:
        DataError: the directory is missing or empty, a file cannot be decoded,
            sizes differ without ``size``, or the layout is ambiguous.
    """
    root = Path(path)
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    files, labels, classes = _discover(root)
    decoded = [decode_image(f) for f in files]
    if size is None:
        _check_same_size(files, decoded)
    gray = all(a.ndim == 2 for a in decoded)
    target_channels = channels if channels is not None else (1 if gray else 3)
    stack = [_chw(a, 1 if gray else 3) for a in decoded]
    if size is not None:
        height, width = _size_arg(size)
        stack = [resize_one(img, height, width) for img in stack]
    images = np.stack(stack)
    height, width = images.shape[2:]
    images = convert(images, (height, width), target_channels)
    return ImageSet(images, np.asarray(labels, dtype=np.int64), classes, str(path))


def list_images(directory: Path) -> list[Path]:
    """Sorted image files directly inside ``directory`` (hidden names skipped)."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _discover(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Image files, their labels and the class names of the folder ``root``."""
    try:
        top = list_images(root)
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        per_class = [(d.name, list_images(d)) for d in subdirs]
    except OSError as err:
        raise DataError(f"{root}: cannot list folder ({err})") from err
    per_class = [(name, found) for name, found in per_class if found]
    if per_class and top:
        raise DataError(
            f"{root}: ambiguous layout: images at the top level (e.g. {top[0].name}) and in "
            f"class sub-folders (e.g. {per_class[0][0]}/); use one or the other"
        )
    if per_class:
        classes = [name for name, _ in per_class]
        files = [f for _, found in per_class for f in found]
        labels = [i for i, (_, found) in enumerate(per_class) for _ in found]
        return files, labels, classes
    if not top:
        raise DataError(f"no images (.png/.jpg/.jpeg) found in {root}")
    return top, [-1] * len(top), []


def _check_same_size(files: list[Path], decoded: list[np.ndarray]) -> None:
    """DataError naming two files of different size, if there are any."""
    first = decoded[0].shape[:2]
    for f, a in zip(files, decoded):
        if a.shape[:2] != first:
            raise DataError(
                f"images in one folder differ in size: {files[0]} is {first[1]}x{first[0]} (WxH), "
                f"{f} is {a.shape[1]}x{a.shape[0]}; pass size=(height, width) to resize them"
            )


def _chw(array: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` uint8 -> ``(channels, H, W)``."""
    if array.ndim == 2:
        array = array[None]
        return np.repeat(array, 3, axis=0) if channels == 3 else array
    return array.transpose(2, 0, 1)


def _size_arg(size: tuple[int, int]) -> tuple[int, int]:
    """Validate ``size=`` as two positive ints."""
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise DataError(f"size must be two positive integers (height, width), got {size!r}")
    return int(size[0]), int(size[1])
