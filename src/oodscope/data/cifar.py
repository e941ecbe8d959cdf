"""Readers for the CIFAR-10 / CIFAR-100 "python version" archives.

Batches are read straight from the ``.tar.gz`` (nothing is extracted) and
unpickled with :func:`oodscope.data.safe_pickle.safe_loads`, so a tampered
archive cannot run code. Each batch is a ``dict`` whose keys may be ``bytes``
(Python 2 pickles) or ``str``; ``data`` is ``(N, 3072)`` uint8, row-major as
``3 x 32 x 32``.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.data.imageset import ImageSet
from oodscope.data.safe_pickle import safe_loads
from oodscope.errors import DataError

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"

_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR100_DIR = "cifar-100-python"
CIFAR10_MEMBERS: dict[str, tuple[str, ...]] = {
    "train": tuple(f"{_CIFAR10_DIR}/data_batch_{i}" for i in range(1, 6)),
    "test": (f"{_CIFAR10_DIR}/test_batch",),
}
CIFAR10_META = f"{_CIFAR10_DIR}/batches.meta"
CIFAR100_MEMBERS: dict[str, tuple[str, ...]] = {
    "train": (f"{_CIFAR100_DIR}/train",),
    "test": (f"{_CIFAR100_DIR}/test",),
}
CIFAR100_META = f"{_CIFAR100_DIR}/meta"


def read_cifar10(archive: str | os.PathLike[str], split: str) -> ImageSet:
    """CIFAR-10 ``split`` ("train": data_batch_1..5, "test": test_batch) from the archive."""
    return _read(archive, split, CIFAR10_MEMBERS, CIFAR10_META, "labels", "label_names", "cifar10")


def read_cifar100(archive: str | os.PathLike[str], split: str) -> ImageSet:
    """CIFAR-100 ``split`` with the 100 fine labels and ``fine_label_names``."""
    return _read(
        archive, split, CIFAR100_MEMBERS, CIFAR100_META, "fine_labels", "fine_label_names", "cifar100"
    )


def _read(
    archive: str | os.PathLike[str],
    split: str,
    members: dict[str, tuple[str, ...]],
    meta_member: str,
    label_key: str,
    names_key: str,
    name: str,
) -> ImageSet:
    """Read the batches of ``split`` and the class names; assemble an ImageSet."""
    if split not in members:
        raise DataError(f"{name}: unknown split {split!r}; use 'train' or 'test'")
    path = Path(archive)
    wanted = (*members[split], meta_member)
    blobs = _read_members(path, wanted)
    meta = _as_dict(safe_loads(blobs[meta_member], f"{path}:{meta_member}"), path, meta_member)
    names = _get(meta, names_key, path, meta_member)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}:{meta_member}: {names_key!r} must be a non-empty list of names")
    classes = [_text(c) for c in names]
    images, labels = [], []
    for member in members[split]:
        where = f"{path}:{member}"
        batch = _as_dict(safe_loads(blobs[member], where), path, member)
        data = _get(batch, "data", path, member)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{where}: 'data' must be a uint8 array of shape (N, 3072), got {_shape_of(data)}")
        lab = np.asarray(_get(batch, label_key, path, member))
        if lab.ndim != 1 or len(lab) != len(data) or not np.issubdtype(lab.dtype, np.integer):
            raise DataError(f"{where}: {label_key!r} must be {len(data)} integers, got {_shape_of(lab)}")
        if len(lab) and (lab.min() < 0 or lab.max() >= len(classes)):
            raise DataError(f"{where}: labels outside 0..{len(classes) - 1}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab.astype(np.int64))
    return ImageSet(
        images=np.concatenate(images), labels=np.concatenate(labels), classes=classes, name=name
    )


def _read_members(path: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Bytes of the named tar members, read in one pass over the compressed archive."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.name not in found:
                    if not member.isfile():
                        raise DataError(f"{path}: archive member {member.name} is not a regular file")
                    stream = tar.extractfile(member)
                    assert stream is not None
                    found[member.name] = stream.read()
                    if len(found) == len(set(wanted)):
                        break
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except EOFError as err:
        raise DataError(f"{path}: truncated archive ({err})") from err
    except (tarfile.TarError, zlib.error, OSError) as err:
        raise DataError(f"{path}: corrupt or unreadable tar.gz archive ({err})") from err
    missing = [m for m in wanted if m not in found]
    if missing:
        raise DataError(f"{path}: archive has no member {', '.join(missing)}")
    return found


def _as_dict(obj: Any, path: Path, member: str) -> dict[Any, Any]:
    """Check that an unpickled batch is a dict."""
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{member}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _get(batch: dict[Any, Any], key: str, path: Path, member: str) -> Any:
    """``batch[key]`` whether the pickle used ``bytes`` or ``str`` keys."""
    for k in (key.encode("ascii"), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{path}:{member}: missing key {key!r}")


def _text(value: Any) -> str:
    """A class name as ``str`` (Python 2 pickles give ``bytes``)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _shape_of(value: Any) -> str:
    """Describe a value for error messages."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
