"""Running a benchmark grid with resume: :func:`run_bench`.

Finished cells are read back from ``DIR/results.jsonl`` and skipped. The protocol plans the
cells; an executor runs the remaining ones: ``local`` (this process) group by group (same data
and outlier sample), so a group's :class:`~oodscope.protocols.Task` is prepared once and upstream
networks are shared through an :class:`~oodscope.detectors.UpstreamCache` (see
:mod:`oodscope.bench.fitting`); ``ray`` as tasks on a Ray cluster
(:mod:`oodscope.bench.ray_executor`). Only this process writes: as each cell finishes, its test
scores are saved to ``scores/`` (:mod:`oodscope.results.scores`), then its row is appended to the
log and ``summary.md`` is rewritten atomically. The command, configuration and settings go to the
``grid`` section of ``experiment.json`` (:func:`record_run`). Instead of a config's grid, an
explicit cell list (a suite's, :mod:`oodscope.bench.paper.suites`) can be run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import torch

import oodscope
from oodscope.bench.cells import fit_cells, local_cells, run_settings
from oodscope.bench.config import BenchConfig
from oodscope.bench.consistency import row_settings, settings_diff
from oodscope.bench.lock import directory_lock
from oodscope.bench.loop import Finished, Hooks, Row, run_cells
from oodscope.bench.presets import check_grid_settings, method_infos
from oodscope.bench.summary import write_summary
from oodscope.detectors import detector_class, settings_for
from oodscope.training import distributed
from oodscope.errors import DataError, InputError
from oodscope.progress import message
from oodscope.protocols import Cell, DataStore
from oodscope.results.records import read_section, write_section

GRID = "grid"  # the section of experiment.json this writes (a directory written before: run.json)

Log = Callable[[str], None]


def plan(config: BenchConfig, store: DataStore) -> list[Cell]:
    """Validate ``config`` and list its cells.

    Raises:
        InputError: no or unknown methods, a method that cannot run here, settings no method has,
            a method the protocol cannot evaluate, classes out of range.
    """
    infos = method_infos(list(config.methods))
    check_grid_settings(list(config.methods), config.overrides, config.variants)
    cells = config.protocol.cells(infos, list(config.seeds), config.preset, store, config.variants)
    if not cells:
        raise InputError("the grid has no cells (no classes or no seeds)")
    config.protocol.check(cells, store)
    return cells


def check_consistent(config: BenchConfig, cells: list[Cell], finished: dict[str, dict[str, Any]]) -> None:
    """InputError if a finished row of this grid was computed with settings other than the
    current ones (``device`` and ``progress`` aside): mixing them in one table would be wrong.
    A setting a row lacks was added after the row was written: it is compared at the value the
    detector had before (its ``saved_defaults``), or not at all when it has none."""
    for cell in cells:
        row = finished.get(cell.key())
        if row is None or not isinstance(row.get("settings"), dict):
            continue
        now = {**detector_class(cell.method).defaults, **run_settings(config, cell)}
        diff = settings_diff(row_settings(cell.method, row["settings"]), now)
        if diff:
            raise InputError(
                f"{config.directory}: finished cell {cell.label} {cell.describe()} was run with different "
                f"settings ({', '.join(diff)}); use another --out directory"
            )


def record_run(config: BenchConfig, n_cells: int, n_finished: int) -> None:
    """Write the ``grid`` section of ``DIR/experiment.json`` atomically: this invocation's command,
    configuration and per-method settings, plus ``history``, the command and start time of earlier
    runs in the same directory (a resumed run keeps what started it; in a directory written before,
    they come from its ``run.json``)."""
    history: list[dict[str, Any]] = []
    try:
        old = read_section(config.directory, GRID)
    except DataError:  # an unreadable older run.json: its history is lost, as before
        old = None
    if old is not None:
        earlier = old.get("history")
        history = [*(earlier if isinstance(earlier, list) else []),
                   {k: old.get(k) for k in ("command", "started", "finished_at_start")}]
    write_section(config.directory, GRID, {
        "command": config.command or sys.argv,
        "config": config.to_json(),
        "settings": {m: settings_for(m, config.preset, config.run.device, config.overrides) for m in config.methods},
        "cells": n_cells,
        "finished_at_start": n_finished,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "oodscope_version": oodscope.__version__,
        "torch_version": torch.__version__,
        "history": history,
    })


def run_bench(config: BenchConfig, log: Log | None = None, cells: list[Cell] | None = None,
              store: DataStore | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``config``; return all rows of this grid (old and new, in the
    current schema).

    ``cells`` replaces the grid of ``config`` (its methods, seeds, variants and the protocol's
    grid) by an explicit list, as the suites of :mod:`oodscope.bench.paper.suites` give; the
    protocol, preset, device, overrides and data root still come from ``config``. Each finished
    cell's test scores go to ``DIR/scores/`` before its row. ``store``: data sets already loaded
    from ``config.run``'s data root, for a caller running several grids (None: load them here).

    Raises:
        InputError: invalid grid, another run holds the directory, or finished rows with
            different settings.
        DataError: data sets missing or unreadable, too few outliers available.
    """
    log = log or message
    if distributed.active():
        if config.run.executor != "local":
            raise InputError("under torchrun the cells run in torchrun's processes: --executor local")
        if not distributed.is_main():
            _follow(config, cells, store)
            return []
    directory = config.directory
    directory.mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):
        return _run_locked(config, log, cells, store)


def _grid(config: BenchConfig, store: DataStore, explicit: list[Cell] | None) -> list[Cell]:
    if explicit is None:
        return plan(config, store)
    method_infos(sorted({c.method for c in explicit}))
    config.protocol.check(explicit, store)
    return list(explicit)


def _follow(config: BenchConfig, explicit: list[Cell] | None, store: DataStore | None) -> None:
    """A torchrun rank other than 0: fit the cells rank 0 runs (their networks train with DDP
    across the ranks); score and write nothing."""
    store = store or DataStore(config.run.data_root, config.run.download)
    cells = _grid(config, store, explicit)
    pending = set(distributed.from_main([]))
    fit_cells(config, [c for c in cells if c.key() in pending], store)


def execute(config: BenchConfig, pending: list[Cell], store: DataStore, log: Log) -> Iterator[Finished]:
    """The finished cells of ``pending``, from the run's executor (``config.run.executor``): this
    process (``local``) or Ray tasks (``ray``, :mod:`oodscope.bench.ray_executor`)."""
    if config.run.executor == "ray":
        from oodscope.bench.ray_executor import ray_cells  # ray only when asked for

        return ray_cells(config, pending, store, log)
    return local_cells(config, pending, store)


def _run_locked(config: BenchConfig, log: Log, explicit: list[Cell] | None,
                store: DataStore | None) -> list[dict[str, Any]]:
    directory = config.directory
    store = store or DataStore(config.run.data_root, config.run.download)
    cells = _grid(config, store, explicit)
    summary_rows: list[dict[str, Any]] = []  # every distinct cell in the log, this grid's or not

    def start(cells: list[Cell], finished: dict[str, Row], rows: list[Row], pending: list[Cell]) -> None:
        distributed.from_main([c.key() for c in pending])  # under torchrun: the other ranks run these too
        record_run(config, len(cells), len(rows))
        summary_rows.extend(finished.values())
        write_summary(directory, summary_rows, len(cells), len(rows))

    def announce(pending: list[Cell], cells: list[Cell], rows: list[Row]) -> str:
        if not pending:
            return f"all {len(cells)} cells already finished in {directory}"
        return f"{len(pending)} of {len(cells)} cells to run ({len(rows)} already finished) -> {directory}"

    def after(done: Finished, row: Row, rows: list[Row]) -> None:
        summary_rows.append(row)
        write_summary(directory, summary_rows, len(cells), len(rows))

    def line(done: Finished, row: Row) -> str:
        return (f"{done.cell.label:>14} {done.cell.describe()}: AUROC {row['metrics']['auroc']:.2f}  "
                f"fit {row['fit_seconds']:.1f}s  (cell {done.seconds:.1f}s)")

    hooks = Hooks(check=lambda cells, finished: check_consistent(config, cells, finished), start=start,
                  after=after, announce=announce, done=line)
    return run_cells(directory, cells, lambda pending: execute(config, pending, store, log), hooks, log,
                     config.run.progress, "bench", lock=False)
