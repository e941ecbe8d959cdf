"""MD5 checks of data files (the checksums the data sets publish)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from oodscope.errors import DataError


def md5_of(path: Path) -> str:
    """Hex MD5 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def verify_file(path: Path, md5: str, size: int | None = None) -> None:
    """Raise DataError "checksum mismatch" unless ``path`` has ``size`` bytes and MD5 ``md5``.

    The file is never modified or deleted.
    """
    try:
        actual_size = path.stat().st_size
        if size is not None and actual_size != size:
            raise DataError(
                f"{path}: checksum mismatch: expected {size} bytes (MD5 {md5}), found {actual_size} "
                f"bytes; the file is incomplete or not the original - replace it"
            )
        actual = md5_of(path)
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err})") from err
    if actual != md5:
        raise DataError(
            f"{path}: checksum mismatch: expected MD5 {md5}, got {actual}; "
            f"the file is corrupt or not the original - replace it"
        )
