"""Running a benchmark grid with resume: :func:`run_bench`.

Finished cells are read back from ``DIR/results.jsonl`` and skipped. The remaining cells
are run group by group (same class, seed and outlier sample), so the data and the outlier
sample are prepared once per group and GEOM's trained f is shared by ``geom`` and
``layers`` (see :mod:`oodscope.bench.fitting`). After every cell its test scores are saved
to ``scores/`` (:mod:`oodscope.bench.scores`), then its row is appended to the log and
``summary.md`` is rewritten atomically. Instead of a config's grid, an explicit cell list
(a suite's, :mod:`oodscope.bench.suites`) can be run.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import oodscope
from oodscope.bench.atomic import write_json_atomic
from oodscope.bench.cells import OE_ALL, Cell, expand_cells, row_key
from oodscope.bench.config import BenchConfig
from oodscope.bench.fitting import BaseCache, fit_and_score
from oodscope.bench.lock import directory_lock
from oodscope.bench.presets import DATASET_AUGMENT, preset_settings
from oodscope.bench.results import ResultsLog
from oodscope.bench.scores import save_scores
from oodscope.bench.summary import write_summary
from oodscope.data import ImageSet, load
from oodscope.detectors import DETECTORS
from oodscope.errors import InputError
from oodscope.protocols import sample_outliers, split_one_class

Log = Callable[[str], None]
UNCOMPARED = ("device", "progress")  # settings that do not change a result


def _default_log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def cell_settings(config: BenchConfig, cell: Cell) -> dict[str, Any]:
    """The detector settings of ``cell``: preset, device, overrides, taps variant, the data set's
    training augmentation (``DATASET_AUGMENT``), seed, progress."""
    s = preset_settings(cell.preset, cell.method, config.device, config.overrides)
    known = DETECTORS[cell.method].defaults
    if cell.taps is not None:
        s["taps"] = list(cell.taps)
    if "augment" in known and "augment" not in (config.overrides or {}):
        s["augment"] = DATASET_AUGMENT.get(cell.dataset, "none")
    if "seed" in known:
        s["seed"] = cell.seed
    if "progress" in known:
        s["progress"] = config.progress
    return s


def plan(config: BenchConfig, n_classes: int) -> list[Cell]:
    """Validate ``config`` and list its cells (every class when ``config.classes`` is None)."""
    unknown = [m for m in config.methods if m not in DETECTORS]
    if unknown or not config.methods:
        raise InputError(f"unknown methods {unknown}; known: {', '.join(DETECTORS)}")
    classes = list(range(n_classes)) if config.classes is None else list(config.classes)
    for n in config.n_oe:
        if n != OE_ALL and (not isinstance(n, int) or n < 1):
            raise InputError(f"number of outliers must be a positive integer or 'all', got {n!r}")
    for k in config.oe_classes:
        if k != OE_ALL and (not isinstance(k, int) or k < 1):
            raise InputError(f"number of outlier classes must be a positive integer or 'all', got {k!r}")
    known_anywhere = set().union(*(DETECTORS[m].defaults for m in config.methods))
    stray = sorted(set(config.overrides) - known_anywhere)
    if stray:
        raise InputError(f"settings {stray} are not known to any of the methods {config.methods}")
    taps_methods = frozenset(m for m in config.methods if "taps" in DETECTORS[m].defaults)
    if config.taps and not taps_methods:
        raise InputError(f"taps variants given, but none of the methods {config.methods} has a taps setting")
    cells = expand_cells(
        config.dataset, list(config.methods), classes, config.oe_dataset, list(config.n_oe),
        list(config.oe_classes), list(config.seeds), config.preset, config.taps, taps_methods,
    )
    check_cells(cells, config.dataset, n_classes)  # classes out of range
    return cells


def settings_diff(old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = UNCOMPARED) -> list[str]:
    """The sorted settings both dicts hold with different values, those in ``ignore`` aside."""
    return sorted(k for k in old.keys() & new.keys() if k not in ignore and old[k] != new[k])


def check_consistent(config: BenchConfig, cells: list[Cell], finished: dict[tuple[Any, ...], dict[str, Any]]) -> None:
    """InputError if a finished row of this grid was computed with settings other than the
    current ones (``device`` and ``progress`` aside; settings a row lacks are not compared):
    mixing them in one table would be wrong."""
    for cell in cells:
        row = finished.get(cell.key())
        if row is None or not isinstance(row.get("settings"), dict):
            continue
        now = {**DETECTORS[cell.method].defaults, **cell_settings(config, cell)}
        diff = settings_diff(row["settings"], now)
        if diff:
            raise InputError(
                f"{config.directory}: finished cell {cell.label} class {cell.id_class} seed {cell.seed} "
                f"was run with different settings ({', '.join(diff)}); use another --out directory"
            )


def check_cells(cells: list[Cell], dataset: str, n_classes: int) -> None:
    """InputError for an explicit cell list (a suite's) naming another data set, unknown methods,
    classes out of range, or invalid outlier budgets (``n_oe`` 0 is allowed: no outliers, for ``geom``)."""
    bad = sorted({c.id_class for c in cells if not 0 <= c.id_class < n_classes})
    if bad:
        raise InputError(f"{dataset}: classes {bad} out of range; valid classes are 0..{n_classes - 1}")
    for cell in cells:
        if cell.dataset != dataset:
            raise InputError(f"cell of data set {cell.dataset!r} in a run on {dataset!r}")
        if cell.method not in DETECTORS:
            raise InputError(f"unknown method {cell.method!r}; known: {', '.join(DETECTORS)}")
        if cell.n_oe != OE_ALL and (not isinstance(cell.n_oe, int) or cell.n_oe < 0):
            raise InputError(f"number of outliers must be a non-negative integer or 'all', got {cell.n_oe!r}")


def _outliers(oe_train: ImageSet | None, cell: Cell, like: ImageSet) -> ImageSet:
    """The outlier sample of ``cell``'s group (the ID class excluded when OE set == ID set);
    an empty set when ``n_oe`` is 0 (unsupervised cells of a suite)."""
    if oe_train is None or cell.n_oe == 0:
        return like.subset(np.zeros(0, dtype=np.int64))
    exclude = (cell.id_class,) if cell.oe_dataset == cell.dataset else ()
    n = None if cell.n_oe == OE_ALL else int(cell.n_oe)
    k = None if cell.oe_classes == OE_ALL else int(cell.oe_classes)
    return sample_outliers(oe_train, n, cell.seed, k_classes=k, like=like, exclude_classes=exclude)


def _row(cell: Cell, outcome: Any, n_train: int, n_test: int, n_outliers: int) -> dict[str, Any]:
    row: dict[str, Any] = {**cell.fields(), **outcome.metrics}
    row.update(
        fit_seconds=round(outcome.fit_seconds, 3),
        score_seconds=round(outcome.score_seconds, 3),
        shared_base=outcome.shared_base,
        n_train=n_train,
        n_test=n_test,
        n_outliers=n_outliers,
        settings=outcome.settings,
        oodscope_version=oodscope.__version__,
        torch_version=torch.__version__,
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if outcome.base_fit_seconds is not None:
        row["base_fit_seconds"] = round(outcome.base_fit_seconds, 3)
    return row


def record_run(config: BenchConfig, n_cells: int, n_finished: int) -> None:
    """Write ``DIR/run.json`` atomically: this invocation's command, configuration and
    per-method settings, plus ``history``, the command and start time of earlier runs
    in the same directory (a resumed run keeps what started it)."""
    path = config.directory / "run.json"
    history: list[dict[str, Any]] = []
    try:
        old = json.loads(path.read_text())
        history = list(old.get("history", [])) + [{k: old.get(k) for k in ("command", "started", "finished_at_start")}]
    except (OSError, ValueError, AttributeError):
        pass
    write_json_atomic(path, {
        "command": config.command or sys.argv,
        "config": config.to_json(),
        "settings": {m: preset_settings(config.preset, m, config.device, config.overrides) for m in config.methods},
        "cells": n_cells,
        "finished_at_start": n_finished,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "oodscope_version": oodscope.__version__,
        "torch_version": torch.__version__,
        "history": history,
    })


def run_bench(config: BenchConfig, log: Log | None = None, cells: list[Cell] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``config``; return all rows of this grid (old and new).

    ``cells`` replaces the grid of ``config`` (its data set, methods, classes, budgets,
    seeds, taps) by an explicit list, as the suites of :mod:`oodscope.bench.suites` give;
    the preset, device, overrides and data root still come from ``config``. Each finished
    cell's test scores go to ``DIR/scores/`` (see :mod:`oodscope.bench.scores`) before its row.

    Raises:
        InputError: invalid grid, another run holds the directory, or finished rows with
            different settings.
        DataError: data sets missing or unreadable, too few outliers available.
    """
    log = log or _default_log
    directory = config.directory
    directory.mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):
        return _run_locked(config, log, cells)


def _run_locked(config: BenchConfig, log: Log, explicit: list[Cell] | None) -> list[dict[str, Any]]:
    directory = config.directory
    results = ResultsLog(directory / "results.jsonl")
    all_rows = results.load()
    finished: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in all_rows:
        finished.setdefault(row_key(r), r)
    train_all = load(config.dataset, "train", root=config.data_root, download=config.download)
    n_classes = len(train_all.classes) or int(train_all.labels.max()) + 1
    if explicit is None:
        cells = plan(config, n_classes)
    else:
        cells = list(explicit)
        check_cells(cells, config.dataset, n_classes)
    check_consistent(config, cells, finished)
    grid_rows = [finished[c.key()] for c in cells if c.key() in finished]
    pending = [c for c in cells if c.key() not in finished]
    record_run(config, len(cells), len(grid_rows))
    summary_rows = list(finished.values())  # every distinct cell in the log, this grid's or not
    write_summary(directory, summary_rows, len(cells), len(grid_rows))
    if not pending:
        log(f"all {len(cells)} cells already finished in {directory}")
        return grid_rows
    log(f"{len(pending)} of {len(cells)} cells to run ({len(grid_rows)} already finished) -> {directory}")
    test_all = load(config.dataset, "test", root=config.data_root, download=config.download)
    oe_sets: dict[str, ImageSet] = {}

    def oe_train(cell: Cell) -> ImageSet | None:
        if cell.n_oe == 0:
            return None
        if cell.oe_dataset not in oe_sets:
            oe_sets[cell.oe_dataset] = load(cell.oe_dataset, "train", root=config.data_root, download=config.download)
        return oe_sets[cell.oe_dataset]

    cache = BaseCache()
    bar = tqdm(total=len(cells), initial=len(grid_rows), desc="bench", unit="cell",
               file=sys.stderr, disable=not config.progress, dynamic_ncols=True)
    try:
        for _, members in itertools.groupby(pending, key=lambda c: c.group):
            members = list(members)
            first = members[0]
            split = split_one_class(train_all, test_all, first.id_class, config.dataset)
            outliers = _outliers(oe_train(first), first, split.train)
            cache.enter((first.dataset, first.id_class, first.seed, first.preset))
            for cell in members:
                start = time.perf_counter()
                outcome = fit_and_score(cell.method, cell_settings(config, cell), split.train, outliers,
                                        split.test, split.is_ood, cache)
                row = _row(cell, outcome, len(split.train), len(split.test), len(outliers))
                if outcome.scores is not None:
                    row["scores_file"] = save_scores(directory, cell, outcome.scores, split.is_ood, split.test.labels)
                results.append(row)
                grid_rows.append(row)
                summary_rows.append(row)
                write_summary(directory, summary_rows, len(cells), len(grid_rows))
                bar.update(1)
                log(f"{cell.label:>14} class {cell.id_class} seed {cell.seed} n_oe {cell.n_oe}: "
                    f"AUROC {row['auroc']:.2f}  fit {outcome.fit_seconds:.1f}s  "
                    f"(cell {time.perf_counter() - start:.1f}s)")
    finally:
        bar.close()
    return grid_rows
