"""Writing whole files atomically: a temporary file in the same directory, fsync, os.replace."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` by a file holding ``text`` (UTF-8) so readers see the old or the new
    content, never a mix: the text goes to a temporary file next to ``path``, is fsynced,
    and is renamed over ``path``. On error the temporary file is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """:func:`write_text_atomic` of ``data`` as indented JSON."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
