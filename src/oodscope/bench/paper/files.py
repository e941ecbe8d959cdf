"""A suite's record (the ``paper_suite`` section of ``DIR/experiment.json``) and its tables rebuilt
from the results, without torch.

The section records the resolved :class:`~oodscope.bench.paper.suites.SuiteSpec`, the data root
and the command line, so tables (and figures, :mod:`oodscope.figures`) can be rebuilt later from
``results.jsonl`` alone with :func:`rebuild_tables`. A directory written before keeps it in
``DIR/suite.json``, read the same (:func:`oodscope.results.records.locate_section`). Running a
suite is :func:`oodscope.bench.paper.run.run_suite`.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oodscope.bench.paper.tables import write_tables
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.errors import DataError, InputError
from oodscope.results import ResultsLog
from oodscope.results.records import locate_section, write_section

SECTION = "paper_suite"  # of experiment.json; suite.json in a directory written before


def read_suite(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The suite record of ``DIR`` (its ``paper_suite`` section, or ``suite.json``), or None when the
    directory holds no suite.

    Raises:
        DataError: the record exists but is not a suite record.
    """
    found = locate_section(directory, SECTION)
    if found is None:
        return None
    file, info = found
    try:
        SuiteSpec.from_json(info["spec"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{Path(directory) / file}: not a suite record ({e})") from None
    return info


def load_spec(directory: str | os.PathLike[str]) -> SuiteSpec:
    """The :class:`SuiteSpec` recorded in ``DIR``.

    Raises:
        InputError: the directory holds no suite record.
    """
    info = read_suite(directory)
    if info is None:
        raise InputError(f"{directory}: no suite recorded (experiment.json holds no {SECTION}); "
                         "run a suite there first (oodscope bench --suite ...)")
    return SuiteSpec.from_json(info["spec"])


def record_suite(spec: SuiteSpec, directory: Path, data_root: str | os.PathLike[str] | None, device: str | None,
                 overrides: dict[str, Any], command: list[str] | None) -> None:
    """Write the ``paper_suite`` section of ``DIR/experiment.json``; a directory already holding
    another suite or data set is refused.

    Raises:
        InputError: ``DIR`` holds a different suite, data set or preset.
    """
    old = read_suite(directory)
    history: list[dict[str, Any]] = []
    if old is not None:
        before = SuiteSpec.from_json(old["spec"])
        for field in ("suite", "dataset", "preset"):
            if getattr(before, field) != getattr(spec, field):
                raise InputError(f"{directory} holds suite {before.suite} on {before.dataset} (preset {before.preset}); "
                                 "use another --out directory")
        history = list(old.get("history", [])) + [{k: old.get(k) for k in ("command", "started", "spec")}]
    root = None if data_root is None else os.path.abspath(data_root)
    write_section(directory, SECTION, {
        "suite": spec.suite,
        "dataset": spec.dataset,
        "preset": spec.preset,
        "spec": spec.to_json(),
        "data_root": root,
        "device": device,
        "overrides": overrides,
        "command": command or sys.argv,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "history": history,
    })


def rebuild_tables(directory: str | os.PathLike[str]) -> list[Path]:
    """Rewrite ``table.md`` and ``table.csv`` from the suite record and ``results.jsonl`` (no training)."""
    spec = load_spec(directory)
    rows = ResultsLog(Path(directory) / "results.jsonl").rows()
    return write_tables(directory, spec, rows)


