"""Reader for gzip-compressed IDX files (the MNIST / EMNIST distribution format).

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, ``ndim``
big-endian uint32 dimensions, then the payload. Only unsigned-byte payloads
(type ``0x08``) occur in MNIST and EMNIST, so only those are accepted:
``0x00000801`` for label vectors and ``0x00000803`` for image stacks.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from oodscope.errors import DataError

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
_KNOWN = {LABELS_MAGIC: "labels", IMAGES_MAGIC: "images"}
MAX_BYTES = 1 << 33
"""Largest payload accepted (8 GiB); a bigger header is taken as corruption."""


def read_idx_gz(path: str | os.PathLike[str], expect: int | None = None) -> np.ndarray:
    """Read a gzip IDX file into a writable ``uint8`` array shaped by its header.

    Args:
        path: The ``.gz`` file.
        expect: ``LABELS_MAGIC`` or ``IMAGES_MAGIC`` to insist on one kind, or
            ``None`` to accept either.

    Raises:
        DataError: the file is missing, not gzip, truncated, has a wrong magic
            number or a payload whose length differs from what the header says.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as stream:
            return _parse(stream, path, expect)
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except EOFError as err:
        raise DataError(f"{path}: truncated gzip file (compressed stream ends early: {err})") from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({err})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err})") from err


def _parse(stream: gzip.GzipFile, path: Path, expect: int | None) -> np.ndarray:
    """Parse header and payload from an open decompressed stream."""
    head = _read_exact(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: truncated IDX file: {len(head)} bytes, too short for a header")
    magic = int.from_bytes(head, "big")
    if magic not in _KNOWN or (expect is not None and magic != expect):
        wanted = (
            f"0x{expect:08x} ({_KNOWN[expect]})"
            if expect is not None
            else f"0x{LABELS_MAGIC:08x} (labels) or 0x{IMAGES_MAGIC:08x} (images)"
        )
        raise DataError(f"{path}: not an IDX file of the expected kind: magic number 0x{magic:08x}, expected {wanted}")
    ndim = head[3]
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX file: header ends after {4 + len(raw_dims)} bytes")
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    count = math.prod(dims)
    shape_text = "x".join(str(d) for d in dims)
    if count > MAX_BYTES:
        raise DataError(
            f"{path}: corrupt IDX header: {shape_text} = {count} bytes is implausibly large"
        )
    data = np.empty(count, dtype=np.uint8)
    got = _read_into(stream, memoryview(data))
    if got < count:
        raise DataError(
            f"{path}: truncated IDX file: header says {shape_text} = {count} bytes, found {got}"
        )
    extra = len(stream.read(1 << 16))
    if extra:
        raise DataError(
            f"{path}: corrupt IDX file: header says {shape_text} = {count} bytes, "
            f"but more data follows"
        )
    return data.reshape(dims)


def _read_exact(stream: gzip.GzipFile, size: int) -> bytes:
    """Read up to ``size`` bytes, fewer only at end of stream."""
    parts = bytearray()
    while len(parts) < size:
        chunk = stream.read(size - len(parts))
        if not chunk:
            break
        parts += chunk
    return bytes(parts)


def _read_into(stream: gzip.GzipFile, view: memoryview) -> int:
    """Fill ``view`` from ``stream``; return how many bytes were read."""
    filled = 0
    total = len(view)
    while filled < total:
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled
