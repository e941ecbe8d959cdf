"""Running a suite into a directory: ``suite.json``, the cells (resumable), ``table.md``/``table.csv``.

``DIR/suite.json`` records the resolved :class:`~oodscope.bench.suites.SuiteSpec`, the data
root and the command line, so tables (and figures, :mod:`oodscope.figures`) can be rebuilt
later from ``results.jsonl`` alone with :func:`rebuild_tables`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oodscope.bench.atomic import write_json_atomic
from oodscope.bench.config import BenchConfig
from oodscope.bench.lock import directory_lock
from oodscope.bench.results import ResultsLog
from oodscope.bench.runner import Log, run_bench
from oodscope.bench.suite_tables import write_tables
from oodscope.bench.suites import SuiteSpec, suite_cells
from oodscope.errors import DataError, InputError

SUITE_JSON = "suite.json"


def read_suite(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The contents of ``DIR/suite.json``, or None when the directory holds no suite.

    Raises:
        DataError: the file exists but is not a suite record.
    """
    path = Path(directory) / SUITE_JSON
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        SuiteSpec.from_json(info["spec"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a suite record ({e})") from None
    return info


def load_spec(directory: str | os.PathLike[str]) -> SuiteSpec:
    """The :class:`SuiteSpec` recorded in ``DIR/suite.json``.

    Raises:
        InputError: no suite.json in ``directory``.
    """
    info = read_suite(directory)
    if info is None:
        raise InputError(f"{directory}: no {SUITE_JSON}; run a suite there first (oodscope bench --suite ...)")
    return SuiteSpec.from_json(info["spec"])


def record_suite(spec: SuiteSpec, config: BenchConfig) -> None:
    """Write ``DIR/suite.json``; a directory already holding another suite or data set is refused.

    Raises:
        InputError: ``DIR`` holds a different suite, data set or preset.
    """
    directory = config.directory
    old = read_suite(directory)
    history: list[dict[str, Any]] = []
    if old is not None:
        before = SuiteSpec.from_json(old["spec"])
        for field in ("suite", "dataset", "preset"):
            if getattr(before, field) != getattr(spec, field):
                raise InputError(f"{directory} holds suite {before.suite} on {before.dataset} (preset {before.preset}); "
                                 "use another --out directory")
        history = list(old.get("history", [])) + [{k: old.get(k) for k in ("command", "started", "spec")}]
    root = None if config.data_root is None else os.path.abspath(config.data_root)
    write_json_atomic(directory / SUITE_JSON, {
        "suite": spec.suite,
        "dataset": spec.dataset,
        "preset": spec.preset,
        "spec": spec.to_json(),
        "data_root": root,
        "device": config.device,
        "overrides": config.overrides,
        "command": config.command or sys.argv,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "history": history,
    })


def rebuild_tables(directory: str | os.PathLike[str]) -> list[Path]:
    """Rewrite ``table.md`` and ``table.csv`` from ``suite.json`` and ``results.jsonl`` (no training)."""
    spec = load_spec(directory)
    rows = ResultsLog(Path(directory) / "results.jsonl").load()
    return write_tables(directory, spec, rows)


def run_suite(spec: SuiteSpec, config: BenchConfig, log: Log | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the suite's unfinished cells into ``config.out``, then write its tables.

    ``config`` supplies the output directory, device, data root, download flag, setting
    overrides, progress and command; its grid fields are replaced by the suite's. The tables
    are written even when the run stops early (error or interrupt), with the missing entries
    marked. Returns the suite's finished rows.

    Raises:
        InputError, DataError: as :func:`oodscope.bench.run_bench`, or ``DIR`` holds another suite.
    """
    config = replace(config, dataset=spec.dataset, methods=list(spec.methods), classes=list(spec.classes),
                     oe_dataset=spec.oe_dataset, n_oe=list(spec.n_oe), oe_classes=list(spec.oe_classes),
                     seeds=list(spec.seeds), preset=spec.preset, taps=None)
    directory = config.directory
    directory.mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):  # fail early, before touching suite.json, if a run is under way
        pass
    record_suite(spec, config)
    try:
        rows = run_bench(config, log, cells=suite_cells(spec))
    except BaseException:
        try:  # a partial table, without hiding the original error
            write_tables(directory, spec, ResultsLog(directory / "results.jsonl").load())
        except Exception:
            pass
        raise
    write_tables(directory, spec, ResultsLog(directory / "results.jsonl").load())
    return rows
