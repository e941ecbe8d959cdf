"""The one run loop of every experiment: :func:`run_cells`.

It holds the directory's lock for the whole run, reads the finished cells back from the
append-only ``DIR/results.jsonl`` (so a rerun resumes where the last one stopped), hands the
pending cells to the experiment's executor and, as each finishes, saves its test scores to
``scores/`` (when it has any) before appending its row — only this process writes. Progress is a
bar over the cells. What differs between experiments comes in as functions: how the pending cells
run (this process, Ray tasks; under ``torchrun`` the grid's ranks), what is checked and recorded
before they do, and what is rewritten after each row (summary, tables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.bench.lock import directory_lock
from oodscope.progress import progress
from oodscope.protocols import Cell
from oodscope.results import ResultsLog, first_per_cell, save_scores

Row = dict[str, Any]


@dataclass
class Finished:
    """A finished cell: its results row (all but ``scores_file``) and, for a cell that scores test
    images, the arrays saved beside it (scores, is_ood, labels)."""

    cell: Cell
    row: Row
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    seconds: float = 0.0
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # further arrays saved beside the scores


@dataclass
class Hooks:
    """What an experiment adds to the loop.

    Attributes:
        check: Called with the cells and the finished rows before anything runs (refuse a directory
            whose finished rows do not fit this run).
        start: Called with the cells, the finished rows of every cell in the log and those of this
            run's cells, before the pending ones run (record the run, write the summary).
        after: Called with each finished cell and its row as written, and every row of this run so
            far (rewrite summary and tables).
        announce: The line logged before the pending cells run, from (pending, cells, finished).
        done: The line logged after each cell, from the finished cell and its row.
    """

    check: Callable[[list[Cell], dict[str, Row]], None] | None = None
    start: Callable[[list[Cell], dict[str, Row], list[Row], list[Cell]], None] | None = None
    after: Callable[[Finished, Row, list[Row]], None] | None = None
    announce: Callable[[list[Cell], list[Cell], list[Row]], str] | None = None
    done: Callable[[Finished, Row], str] | None = None


def run_cells(directory: str | Path, cells: list[Cell], execute: Callable[[list[Cell]], Iterable[Finished]],
              hooks: Hooks | None = None, log: Callable[[str], None] = print, show_progress: bool = True,
              name: str = "bench", lock: bool = True) -> list[Row]:
    """Run every cell of ``cells`` not yet in ``DIR/results.jsonl`` and return the rows of ``cells``
    (finished before, then new, in the order they finished).

    ``execute(pending)`` yields each pending cell as it finishes, in any order. ``lock``: take the
    directory's lock (False when the caller already holds it).

    Raises:
        InputError: another run holds the directory, or what ``hooks.check`` refuses.
        DataError: an unreadable results log.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if lock:
        with directory_lock(directory):
            return run_cells(directory, cells, execute, hooks, log, show_progress, name, lock=False)
    hooks = hooks or Hooks()
    results = ResultsLog(directory / "results.jsonl")
    finished = first_per_cell(results.rows())
    if hooks.check is not None:
        hooks.check(cells, finished)
    rows = [finished[c.key()] for c in cells if c.key() in finished]
    pending = [c for c in cells if c.key() not in finished]
    if hooks.start is not None:
        hooks.start(cells, finished, rows, pending)
    if hooks.announce is not None:
        log(hooks.announce(pending, cells, rows))
    if not pending:
        return rows
    bar = progress(len(cells), name, show_progress, unit="cell", initial=len(rows))
    try:
        for done in execute(pending):
            row = done.row
            if done.arrays is not None:
                row = {**row, "scores_file": save_scores(directory, done.cell.row_fields(), *done.arrays, done.extra)}
            results.append(row)
            rows.append(row)
            if hooks.after is not None:
                hooks.after(done, row, rows)
            bar.update(1)
            if hooks.done is not None:
                log(hooks.done(done, row))
    finally:
        bar.close()
    return rows
