"""The in-memory image collection every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oodscope.errors import DataError


@dataclass
class ImageSet:
    """Images with their labels, the way every ``oodscope.data`` loader returns them.

    Attributes:
        images: ``uint8`` array of shape ``(N, C, H, W)`` with ``C`` in ``{1, 3}``.
        labels: ``int64`` array of shape ``(N,)``; ``-1`` where the label is unknown
            (an image folder without class sub-folders).
        classes: Class names; ``labels`` index into this list.
        name: Where the images came from, e.g. ``"mnist"``, ``"emnist-letters"``
            or the path of an image folder.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str] = field(default_factory=list)
    name: str = ""

    def __post_init__(self) -> None:
        """Check shapes and dtypes so a malformed set fails where it is made.

        Integer labels of another dtype (or a list of ints) are converted to int64.
        """
        labels = np.asarray(self.labels)
        if labels.dtype != np.int64 and (labels.dtype.kind in "iu" or labels.size == 0):
            labels = labels.astype(np.int64)
        self.labels = labels
        images = self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(
                f"{self.name or 'ImageSet'}: images must be a uint8 array of shape (N, C, H, W), "
                f"got {_describe(images)}"
            )
        if images.shape[1] not in (1, 3):
            raise DataError(
                f"{self.name or 'ImageSet'}: images must have 1 or 3 channels, got shape {images.shape}"
            )
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            raise DataError(
                f"{self.name or 'ImageSet'}: labels must be an int64 array of shape (N,), "
                f"got {_describe(labels)}"
            )
        if len(labels) != len(images):
            raise DataError(
                f"{self.name or 'ImageSet'}: {len(images)} images but {len(labels)} labels"
            )

    def __len__(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    def subset(self, idx: np.ndarray) -> ImageSet:
        """The images at ``idx`` (integer indices or a boolean mask), same classes and name."""
        idx = np.asarray(idx)
        return ImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            classes=list(self.classes),
            name=self.name,
        )


def _describe(value: object) -> str:
    """Short description of an array-like for error messages."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
