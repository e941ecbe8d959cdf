"""Images that stream past in batches instead of sitting in memory: :class:`ImageStream`.

A stream is read again from its start each time it is iterated: a torch ``DataLoader`` (batches of
images, or of ``(images, labels)``), any re-iterable of arrays, or an image folder read and decoded
``batch_size`` files at a time (:meth:`ImageStream.from_folder`). Detectors that fit in one pass
with bounded memory (``deep-knn``, ``gaussian`` on a model of yours) take one in place of an array,
so fitting on a folder of any size holds one batch of images at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.data.conversion import convert, resize_one
from oodscope.data.decode import decode_image
from oodscope.data.folder import _chw, _discover
from oodscope.errors import DataError, InputError


class ImageStream:
    """Batches of images (N, C, H, W) from ``source``, read from the start at each iteration.

    Args:
        source: A ``DataLoader`` or any re-iterable of batches (arrays or tensors, or tuples whose
            first element is the images), or a function returning a fresh iterator.
        name: What the stream is, for messages.
    """

    def __init__(self, source: Iterable[Any] | Callable[[], Iterator[Any]], name: str = "image stream") -> None:
        if isinstance(source, (np.ndarray, str, bytes)) or not (callable(source) or hasattr(source, "__iter__")):
            raise InputError(f"{name}: a stream takes a DataLoader or an iterable of batches, got {type(source).__name__}")
        self.source, self.name = source, name
        self._first: Any = None

    def __iter__(self) -> Iterator[Any]:
        """The batches of images, from the start (a tuple's first element when batches are tuples)."""
        it = self.source() if callable(self.source) and not hasattr(self.source, "__iter__") else iter(self.source)
        for batch in it:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch

    def first(self) -> Any:
        """The first batch (kept).

        Raises:
            InputError: the stream is empty.
        """
        if self._first is None:
            self._first = next(iter(self), None)
            if self._first is None:
                raise InputError(f"{self.name}: no images")
        return self._first

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], batch_size: int = 256, size: tuple[int, int] | None = None,
                    channels: int | None = None) -> ImageStream:
        """A folder of PNG / JPEG files (flat, or one sub-folder per class), decoded ``batch_size`` at
        a time; ``size`` and ``channels`` as :func:`oodscope.data.load_folder` takes them (without
        ``size`` every image must have the first one's size; without ``channels``, the first one's)."""
        root = Path(path)
        if not root.is_dir():
            raise DataError(f"{root}: not a directory")
        files, _, _ = _discover(root)

        def batches() -> Iterator[np.ndarray]:
            want: tuple[int, int, int] | None = None
            for start in range(0, len(files), batch_size):
                chunk = []
                for f in files[start:start + batch_size]:
                    a = decode_image(f)
                    img = _chw(a, 1 if a.ndim == 2 else 3)
                    if size is not None:
                        img = resize_one(img, *size)
                    c = channels if channels is not None else (want[0] if want else img.shape[0])
                    img = convert(img[None], tuple(img.shape[1:]), c)[0]
                    if want is None:
                        want = tuple(img.shape)
                    elif tuple(img.shape) != want:
                        raise DataError(f"{f}: {img.shape[1]}x{img.shape[2]} with {img.shape[0]} channel(s), the folder's "
                                        f"first image {want[1]}x{want[2]} with {want[0]}: give a size (and channels)")
                    chunk.append(img)
                yield np.stack(chunk)

        stream = cls(batches, f"{root}")
        stream.n_files = len(files)
        return stream
