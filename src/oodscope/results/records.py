"""The JSON records a benchmark directory keeps beside its results, read without torch.

``run.json`` and ``suite.json`` hold the command of the latest invocation and, under
``history``, those of the earlier ones; ``merges.json`` lists the directories whose cells
``oodscope merge`` copied in. Shared by :mod:`oodscope.bench` (which writes them) and
:mod:`oodscope.report` (which shows them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oodscope.errors import DataError

MERGES = "merges.json"


def recorded_commands(record: dict[str, Any]) -> list[tuple[Any, Any]]:
    """``(started, command)`` of every invocation in a ``run.json`` or ``suite.json`` record,
    oldest first (its ``history``, then the latest); entries without a command are left out."""
    history = [h for h in record.get("history") or [] if isinstance(h, dict)]
    return [(e.get("started"), e["command"]) for e in [*history, record] if e.get("command")]


def read_merges(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of ``DIR/merges.json``, none if it is absent.

    Raises:
        DataError: the file cannot be read or is not ``{"merges": [{...}, ...]}``.
    """
    path = Path(directory) / MERGES
    if not path.exists():
        return []
    try:
        merges = json.loads(path.read_text(encoding="utf-8"))["merges"]
        if not isinstance(merges, list) or not all(isinstance(m, dict) for m in merges):
            raise TypeError("'merges' is not a list of objects")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a merges record ({e})") from None
    return merges
