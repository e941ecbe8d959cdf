"""Images that stream past in batches instead of sitting in memory: :class:`ImageStream`.

A stream is read again from its start each time it is iterated: a torch ``DataLoader`` (batches of
images, or of ``(images, labels)``), any re-iterable of arrays, or an image folder read and decoded
``batch_size`` files at a time (:meth:`ImageStream.from_folder`, a class sub-folder's index being
each image's label). Detectors on a model of yours take one in place of an array (with the labels
riding along for those that read them), so fitting on a folder of any size holds one batch of
images at a time plus what the detector's settings bound (:meth:`ImageStream.sample`: a uniform
sample in one pass).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
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
        self.folder: tuple[Path, tuple[int, int] | None, int | None, int] | None = None  # from_folder's arguments
        self.classes: list[str] = []

    def __iter__(self) -> Iterator[Any]:
        """The batches of images, from the start (a tuple's first element when batches are tuples)."""
        for images, _ in self.pairs():
            yield images

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        """(images, labels) batches from the start: the labels are a tuple batch's second element
        (a ``DataLoader`` of ``(image, label)`` pairs), a class folder's indices, or None."""
        it = self.source() if callable(self.source) and not hasattr(self.source, "__iter__") else iter(self.source)
        for batch in it:
            if isinstance(batch, (tuple, list)):
                yield batch[0], (batch[1] if len(batch) > 1 else None)
            else:
                yield batch, None

    def sample(self, n: int, seed: int, labelled: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """A uniform sample without replacement of ``n`` images of the stream (all of them when it has
        fewer), in stream order, and their labels: one pass, holding at most ``n`` images plus a
        batch (each image gets a seeded random key; the ``n`` smallest keys are kept).

        Raises:
            InputError: the stream is empty, or ``labelled`` and a batch comes without labels.
        """
        rng = np.random.default_rng(seed)
        kept_x: np.ndarray | None = None
        kept_y: np.ndarray | None = None
        keys = np.zeros(0)
        for images, labels in self.pairs():
            x = np.asarray(images)
            if labelled and labels is None:
                raise InputError(f"{self.name}: the detector needs class labels; give batches of (images, labels) "
                                 "or a folder with one sub-folder per class")
            y = None if labels is None else np.asarray(labels).reshape(-1)
            keys = np.concatenate([keys, rng.random(len(x))])
            kept_x = x if kept_x is None else np.concatenate([kept_x, x])
            if y is not None:
                kept_y = y if kept_y is None else np.concatenate([kept_y, y])
            if len(keys) > n:
                order = np.sort(np.argsort(keys, kind="stable")[:n])
                keys, kept_x = keys[order], kept_x[order]
                kept_y = None if kept_y is None else kept_y[order]
        if kept_x is None:
            raise InputError(f"{self.name}: no images")
        return kept_x, kept_y

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
                    channels: int | None = None, keep: Sequence[int] | None = None) -> ImageStream:
        """A folder of PNG / JPEG files (flat, or one sub-folder per class: the sub-folder's index is
        each image's label), decoded ``batch_size`` at a time; ``size`` and ``channels`` as
        :func:`oodscope.data.load_folder` takes them (without ``size`` every image must have the first
        one's size; without ``channels``, the first one's). ``keep``: only the files of these indices,
        in the folder's sorted order (e.g. a training split)."""
        root = Path(path)
        if not root.is_dir():
            raise DataError(f"{root}: not a directory")
        files, labels, classes = _discover(root)
        if keep is not None:
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]

        def batches() -> Iterator[Any]:
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
                yield (np.stack(chunk), np.asarray(labels[start:start + batch_size])) if classes else np.stack(chunk)

        stream = cls(batches, f"{root}")
        stream.n_files = len(files)
        stream.classes = classes
        stream.folder = (root, size, channels, batch_size)
        return stream
