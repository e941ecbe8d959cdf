"""Writing whole files atomically: a temporary file in the same directory, fsync, os.replace.

Readers see the old content or the new, never a mix, and a failure leaves no temporary file.
Used for results, tables, score files, figures and reports (saved models are directories: see
``oodscope.detectors.base``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, fsync it and rename it over
    ``path`` (mode 0644, as files meant to be shared). On any error the temporary file is removed
    and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_atomic` of ``text`` as UTF-8."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """:func:`write_atomic` of ``data`` as indented JSON."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
