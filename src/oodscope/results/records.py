"""The JSON records a benchmark directory keeps beside its results, read without torch.

Each directory has one record file, ``experiment.json``: which experiment it holds (``kind``,
``suite``, ``schema``, ``options``, the command of the latest ``oodscope bench`` and, under
``history``, those of the earlier ones; written by :mod:`oodscope.bench.experiment`) and one
section per part that ran there:

- ``grid``: what :func:`oodscope.bench.run_bench` ran (command, ``config``, per-method
  ``settings``, ``cells``, ``finished_at_start``, versions, ``history``);
- ``paper_suite``: a paper suite's resolved spec, data root, device, overrides, command, ``history``;
- ``measured``: a measurement suite's plan (``suite``, ``plan``, ``run``, command, version).

Directories written before kept each section in a file of its own (``run.json``, ``suite.json``,
``robustness.json`` / ``verification.json``); :func:`locate_section` and :func:`read_section` read
a section from ``experiment.json`` or, when it is not there, from that older file: the one place
that knows the old layout. ``merges.json`` lists the directories whose cells ``oodscope merge``
copied in. Shared by :mod:`oodscope.bench` (which writes them) and :mod:`oodscope.report` (which
shows them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

from oodscope.atomic import write_text_atomic
from oodscope.errors import DataError

MERGES = "merges.json"
RECORD = "experiment.json"
RECORD_SCHEMA = 2  # 2: the sections below live in experiment.json (1: in files of their own)
HEADER = ("kind", "suite", "schema", "options", "command", "started", "history")
# each section of experiment.json and the files that held it before schema 2, in the order tried
SECTIONS: dict[str, tuple[str, ...]] = {"grid": ("run.json",), "paper_suite": ("suite.json",),
                                        "measured": ("robustness.json", "verification.json")}


def recorded_commands(record: dict[str, Any]) -> list[tuple[Any, Any]]:
    """``(started, command)`` of every invocation in a record (``experiment.json`` or one of its
    sections), oldest first (its ``history``, then the latest); entries without a command are left out."""
    history = [h for h in record.get("history") or [] if isinstance(h, dict)]
    return [(e.get("started"), e["command"]) for e in [*history, record] if e.get("command")]


def read_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``path`` parsed as a JSON object.

    Raises:
        DataError: naming the file: it cannot be read, is not UTF-8, not JSON or not an object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def read_record_file(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The whole of ``DIR/experiment.json`` (None when absent); it may hold sections only (written
    by :func:`oodscope.bench.run_bench` called from Python, or by a run killed before its end).

    Raises:
        DataError: the file is not a JSON object, or of a newer schema than this oodscope reads.
    """
    path = Path(directory) / RECORD
    if not path.exists():
        return None
    record = read_object(path)
    try:
        schema = int(record.get("schema", RECORD_SCHEMA))
    except (TypeError, ValueError):
        raise DataError(f"{path}: not an experiment record (schema {record.get('schema')!r})") from None
    if schema > RECORD_SCHEMA:
        raise DataError(f"{path}: schema {schema} is newer than this oodscope reads ({RECORD_SCHEMA}); upgrade oodscope")
    return record


def locate_section(directory: str | os.PathLike[str], name: str) -> tuple[str, dict[str, Any]] | None:
    """``(file, contents)`` of the section ``name`` of a directory's record: from ``experiment.json``,
    else from the file that held it in a directory written before (``file`` is its name); None when
    the directory has neither.

    Raises:
        DataError: the file holding it cannot be read or is not a JSON object.
    """
    record = read_record_file(directory)
    if record is not None and record.get(name) is not None:
        if not isinstance(record[name], dict):
            raise DataError(f"{Path(directory) / RECORD}: section {name!r} is not a JSON object")
        return RECORD, record[name]
    for legacy in SECTIONS[name]:
        path = Path(directory) / legacy
        if path.exists():
            return legacy, read_object(path)
    return None


def read_section(directory: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The section ``name`` of a directory's record (see :func:`locate_section`), None when absent."""
    found = locate_section(directory, name)
    return None if found is None else found[1]


def section_label(file: str, name: str) -> str:
    """Where a section was read: ``experiment.json: grid``, or the older file's name (``run.json``)."""
    return f"{RECORD}: {name}" if file == RECORD else file


@contextmanager
def _updating(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``flock`` on the directory itself while its record is read, changed and replaced, so two
    processes writing different parts of it (a run's section, a refused run's header) lose neither."""
    if fcntl is None:  # no flock on this system: the update is atomic, not serialised
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update_record(directory: str | os.PathLike[str], values: dict[str, Any]) -> Path:
    """Set ``values`` (header fields or whole sections) in ``DIR/experiment.json``, keeping what else
    it holds, and write it atomically (the header first, then the sections). The schema becomes this
    oodscope's.

    Raises:
        DataError: the existing file is unreadable or of a newer schema (it is left as it is).
    """
    with _updating(directory):
        record = {**(read_record_file(directory) or {}), **values, "schema": RECORD_SCHEMA}
        order = [*HEADER, *SECTIONS]
        ordered = {k: record[k] for k in order if k in record} | {k: v for k, v in record.items() if k not in order}
        return write_text_atomic(Path(directory) / RECORD, json.dumps(ordered, indent=2) + "\n")


def write_section(directory: str | os.PathLike[str], name: str, value: dict[str, Any]) -> Path:
    """Write the section ``name`` of ``DIR/experiment.json`` (atomically; the rest is kept)."""
    if name not in SECTIONS:
        raise ValueError(f"unknown record section {name!r}; known: {', '.join(SECTIONS)}")
    return update_record(directory, {name: value})


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
