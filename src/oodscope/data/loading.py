"""The single entry point :func:`load` for named data sets and image folders."""

from __future__ import annotations

import os
from pathlib import Path

from oodscope.data.availability import ensure_files
from oodscope.data.conversion import convert
from oodscope.data.folder import load_folder
from oodscope.data.imageset import ImageSet
from oodscope.data.paths import resolve_root
from oodscope.data.registry import DATASETS, SPLITS
from oodscope.errors import DataError


def load(
    name: str | os.PathLike[str],
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> ImageSet:
    """Load a named data set split, or an image folder.

    Args:
        name: A key of :data:`DATASETS` ("mnist", "emnist-letters", "cifar10",
            "cifar100", "digits") or the path of an image folder. Registry names
            win; write ``./mnist`` to mean a folder called ``mnist``.
        split: "train" or "test" (ignored for folders).
        root: Data root (see :func:`resolve_root`); files live in ``root/<folder>``.
        download: Fetch missing files from the official sources (or
            ``$OODSCOPE_MIRROR``). Existing files are always checksum-verified.
        size: Optional ``(height, width)`` to resize to (for folders this also
            allows images of differing sizes).
        channels: Optional 1 or 3 to force gray or RGB.

    Raises:
        DataError: unknown name, bad split, missing/corrupt files, failed download.
    """
    key = os.fspath(name)
    spec = DATASETS.get(key)
    if spec is None:
        path = Path(key).expanduser()
        if not path.exists():
            known = ", ".join(sorted(DATASETS))
            raise DataError(
                f"unknown data set {key!r}: not a known name ({known}) and no folder at {path}"
            )
        return load_folder(path, size=size, channels=channels)
    if split not in SPLITS or split not in spec.splits:
        raise DataError(f"{spec.name}: unknown split {split!r}; use 'train' or 'test'")
    directory = ensure_files(spec, resolve_root(root), split, download)
    data = spec.loader(directory, split)
    if size is None and channels is None:
        return data
    target_size = size if size is not None else data.images.shape[2:]
    target_channels = channels if channels is not None else data.images.shape[1]
    data.images = convert(data.images, target_size, target_channels)
    return data
