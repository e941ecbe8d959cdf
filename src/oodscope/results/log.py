"""The append-only results log ``results.jsonl``: one JSON object per finished cell.

Rows are appended with a single ``write`` of the whole line followed by flush and
``fsync``, so a killed process leaves at most one partial last line. :meth:`ResultsLog.load`
cuts such a partial line away (it never held a finished result) before anything new is
appended, so rows are never lost or duplicated across restarts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oodscope.errors import DataError


class ResultsLog:
    """``results.jsonl`` in a benchmark directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def repair(self) -> int:
        """Truncate a trailing partial line (no final newline). Returns the bytes removed."""
        if not self.path.exists():
            return 0
        with open(self.path, "r+b") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return 0
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
            return len(data) - keep

    def load(self) -> list[dict[str, Any]]:
        """Repair the file (see :meth:`repair`) and return its rows in file order.

        Raises:
            DataError: a complete line is not a JSON object (the file was edited or is
                not a results log); the message names the line.
        """
        self.repair()
        if not self.path.exists():
            return []
        rows = []
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise DataError(f"{self.path}, line {number}: not valid JSON ({e})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{self.path}, line {number}: expected a JSON object")
                rows.append(row)
        return rows

    def append(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line with one write, then flush and fsync."""
        line = (json.dumps(row, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
        with open(self.path, "ab", buffering=0) as f:
            written = f.write(line)
            while written < len(line):  # a short write on an unbuffered file: finish the line
                written += f.write(line[written:])
            os.fsync(f.fileno())
