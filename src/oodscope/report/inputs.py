"""Reading a benchmark output directory (read only; nothing in it is changed).

Every problem is an :class:`~oodscope.errors.OodscopeError` naming the directory or file:
a missing directory or one with nothing to report is an :class:`InputError`, a file that
cannot be read or parsed is a :class:`DataError`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodscope.errors import DataError, InputError
from oodscope.results import locate_section, read_merges, read_results, section_label

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESULTS = "results.jsonl"
REPORT = "report.html"


@dataclass
class RunDir:
    """What a benchmark directory holds, as read by :func:`read_dir`.

    Attributes:
        path: The directory.
        rows: Rows of ``results.jsonl`` in file order, in the current schema (a partial last
            line left out).
        partial_last_line: Whether an unparsable last line of ``results.jsonl`` was left out.
        run: The ``grid`` section of ``experiment.json`` (what the grid ran: command, configuration,
            settings), if present; ``run.json`` in a directory written before.
        suite: The ``paper_suite`` section of ``experiment.json`` (a paper suite's spec), if present;
            ``suite.json`` in a directory written before.
        sources: Where ``run`` and ``suite`` were read (``{"run": "experiment.json: grid"}``, or the
            older file's name), for the report's labels.
        merges: ``merges.json``'s entries (cells merged in from other directories, see
            ``oodscope merge``), if present.
        notes: ``(file name, text)`` of every ``*.md`` file other than the tables oodscope writes
            (``summary.md``, ``table*.md``), which the report renders from the results instead.
        csv_tables: ``(file name, rows)`` of every ``*.csv`` without a ``.md`` twin of the same stem.
        figures: ``(file name, PNG bytes)`` of every ``*.png``, in natural name order.
    """

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    partial_last_line: bool = False
    run: dict[str, Any] | None = None
    suite: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    merges: list[dict[str, Any]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    csv_tables: list[tuple[str, list[list[str]]]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)

    def has_content(self) -> bool:
        """True when there is anything to report (results, notes, tables or figures)."""
        return bool(self.rows or any(t.strip() for _, t in self.notes) or self.csv_tables or self.figures)


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``fig3_class2`` before ``fig3_class10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``; DataError naming the file if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read_text(path: Path) -> str:
    """``path`` decoded as UTF-8; DataError naming the file if unreadable or not UTF-8."""
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_csv(path: Path) -> list[list[str]]:
    """The rows of a CSV file; DataError naming the file if it cannot be parsed."""
    try:
        return [row for row in csv.reader(io.StringIO(read_text(path))) if row]
    except csv.Error as e:
        raise DataError(f"{path}: not valid CSV ({e})") from None


def read_png(path: Path) -> bytes:
    """The bytes of a PNG file; DataError naming the file if it is not a PNG."""
    data = read_bytes(path)
    if not data.startswith(PNG_SIGNATURE):
        raise DataError(f"{path}: not a PNG image")
    return data


def written_by_oodscope(name: str) -> bool:
    """Whether a Markdown file is one of the tables a benchmark writes (rendered from the results)."""
    return name == "summary.md" or (name.startswith("table") and name.endswith(".md"))


def _files(directory: Path, suffix: str) -> list[Path]:
    found = [p for p in directory.iterdir() if p.suffix.lower() == suffix and not p.name.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.name))


def read_dir(directory: str | Path) -> RunDir:
    """Read every report input of ``directory``.

    Raises:
        InputError: ``directory`` does not exist, is not a directory, or holds nothing to
            report (no result rows, tables or figures).
        DataError: a file cannot be read or parsed (the message names it).
    """
    path = Path(directory)
    if not path.exists():
        raise InputError(f"{path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{path}: not a directory")
    d = RunDir(path)
    if (path / RESULTS).exists():
        d.rows, d.partial_last_line = read_results(path / RESULTS)
    for name, section in (("run", "grid"), ("suite", "paper_suite")):
        found = locate_section(path, section)
        if found is not None:
            setattr(d, name, found[1])
            d.sources[name] = section_label(found[0], section)
    d.merges = read_merges(path)
    md = _files(path, ".md")
    d.notes = [(p.name, read_text(p)) for p in md if not written_by_oodscope(p.name)]
    md_stems = {p.stem for p in md}
    d.csv_tables = [(p.name, read_csv(p)) for p in _files(path, ".csv") if p.stem not in md_stems]
    d.figures = [(p.name, read_png(p)) for p in _files(path, ".png")]
    if not d.has_content():
        raise InputError(f"{path}: nothing to report (no results in {RESULTS}, no notes, "
                         "CSV tables or PNG figures)")
    return d
