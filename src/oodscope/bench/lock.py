"""An exclusive lock on a benchmark directory, so two runs never append to one results log."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oodscope.errors import InputError


@contextmanager
def directory_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``flock`` on ``directory/.lock`` for the duration; the kernel releases it if the
    process dies, so a killed run never leaves a stale lock.

    Raises:
        InputError: another process holds the lock.
    """
    path = Path(directory) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{directory}: another benchmark is running in this directory") from None
        yield
    finally:
        os.close(fd)
