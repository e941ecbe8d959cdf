"""The append-only results log ``results.jsonl``: one JSON object per finished cell.

Rows are appended with a single ``write`` of the whole line followed by flush and
``fsync``, so a killed process leaves at most one partial last line. :meth:`ResultsLog.load`
cuts such a partial line away (it never held a finished result) before anything new is
appended, so rows are never lost or duplicated across restarts. :func:`read_results` reads a
log without changing it (for reports). Rows are stored as written; :meth:`ResultsLog.rows`
and :func:`read_results` give them in the current schema (:func:`oodscope.results.schema.normalize`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oodscope.errors import DataError
from oodscope.results.schema import normalize, row_key


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

    def rows(self) -> list[dict[str, Any]]:
        """:meth:`load`, each row in the current schema.

        Raises:
            DataError: as :meth:`load`, or a row that no schema reads (the message names the line).
        """
        return normalize_rows(self.load(), self.path)

    def append(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line with one write, then flush and fsync."""
        line = (json.dumps(row, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
        with open(self.path, "ab", buffering=0) as f:
            written = f.write(line)
            while written < len(line):  # a short write on an unbuffered file: finish the line
                written += f.write(line[written:])
            os.fsync(f.fileno())


def normalize_rows(rows: list[dict[str, Any]], path: str | os.PathLike[str] = "results.jsonl") -> list[dict[str, Any]]:
    """Every row in the current schema; DataError naming ``path`` and the row's number otherwise."""
    out = []
    for number, row in enumerate(rows, start=1):
        try:
            out.append(normalize(row))
        except DataError as e:
            raise DataError(f"{path}, row {number}: {e}") from None
    return out


def read_results(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], bool]:
    """The rows of a ``results.jsonl`` in the current schema, without changing the file, and whether
    an unparsable last line was left out (a killed run may leave one). A bad line elsewhere is a
    DataError naming the file and line; a missing file has no rows."""
    path = Path(path)
    if not path.exists():
        return [], False
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    numbered = [(n, raw) for n, raw in enumerate(lines, start=1) if raw.strip()]
    rows: list[dict[str, Any]] = []
    partial = False
    for k, (number, raw) in enumerate(numbered):
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if k == len(numbered) - 1:
                partial = True
                break
            raise DataError(f"{path}, line {number}: not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object")
        try:
            rows.append(normalize(row))
        except DataError as e:
            raise DataError(f"{path}, line {number}: {e}") from None
    return rows, partial


def first_per_cell(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Normalised rows by cell key; a cell finished twice keeps its first row (as a resume does)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(row_key(r), r)
    return out
