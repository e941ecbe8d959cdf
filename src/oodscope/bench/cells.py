"""One benchmark cell, fitted and scored: :func:`run_cell`, a :class:`~oodscope.bench.loop.Finished`.

Executors (the local loop of :mod:`oodscope.bench.runner`, Ray tasks of
:mod:`oodscope.bench.ray_executor`) call :func:`run_cell`; only the process that owns the run
directory writes what it returns (scores file, results row, summary).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import torch

import oodscope
from oodscope.bench.config import BenchConfig
from oodscope.bench.fitting import CellOutcome, fit_and_score, fit_detector
from oodscope.bench.loop import Finished
from oodscope.bench.presets import cell_settings
from oodscope.detectors import UpstreamCache, default_cache_dir
from oodscope.protocols import Cell, DataStore, Task
from oodscope.results import SCHEMA_VERSION


def make_row(cell: Cell, outcome: CellOutcome, task: Task) -> dict[str, Any]:
    """The results row of a finished cell (schema :data:`oodscope.results.SCHEMA_VERSION`)."""
    return {
        "schema": SCHEMA_VERSION,
        **cell.row_fields(),
        "metrics": outcome.metrics,
        "fit_seconds": round(outcome.fit_seconds, 3),
        "score_seconds": round(outcome.score_seconds, 3),
        "upstream": None if outcome.upstream is None else outcome.upstream.row(),
        "n_train": len(task.train),
        "n_validation": 0 if task.validation is None else len(task.validation),
        "n_test": len(task.test),
        "n_outliers": outcome.n_outliers,
        "settings": outcome.settings,
        "precision": str(outcome.settings.get("precision", "float32")),  # what the scores were computed in
        "oodscope_version": oodscope.__version__,
        "torch_version": torch.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def make_cache(config: BenchConfig, keep: int = 4) -> UpstreamCache:
    """The run's upstream cache (the last ``keep`` networks in memory): on disk unless
    ``run.disk_cache`` is off."""
    if not config.run.disk_cache:
        return UpstreamCache(None, keep)
    return UpstreamCache(config.run.cache_dir or default_cache_dir(), keep)


def run_settings(config: BenchConfig, cell: Cell, progress: bool = False) -> dict[str, Any]:
    """The detector settings of ``cell`` in this run: its preset, the run's overrides and device."""
    return cell_settings(cell, config.run.device, config.overrides, progress)


def run_cell(config: BenchConfig, cell: Cell, task: Task, cache: UpstreamCache) -> Finished:
    """Fit and score ``cell`` on ``task`` with the run's settings, sharing upstreams through ``cache``;
    the outputs ``config.keep`` names (and, with logits, the test images' classes) come along."""
    start = time.perf_counter()
    settings = run_settings(config, cell, config.run.progress)
    outcome = fit_and_score(cell.method, settings, task, cache, config.keep, config.model)
    extra = dict(outcome.kept)
    if "logits" in extra and task.test_class is not None:
        extra["test_class"] = task.test_class
    return Finished(cell, make_row(cell, outcome, task), (outcome.scores, task.is_ood, task.saved_labels),
                    time.perf_counter() - start, extra)


def _by_group(config: BenchConfig, pending: list[Cell], store: DataStore) -> Iterator[tuple[Cell, Task]]:
    for _, members in itertools.groupby(pending, key=config.protocol.group):
        members = list(members)
        task = config.protocol.task(members[0], store)
        for cell in members:
            yield cell, task


def local_cells(config: BenchConfig, pending: list[Cell], store: DataStore) -> Iterator[Finished]:
    """Run ``pending`` in this process, group by group (one :class:`Task` per group, one cache)."""
    cache = make_cache(config)
    for cell, task in _by_group(config, pending, store):
        yield run_cell(config, cell, task, cache)


def fit_cells(config: BenchConfig, pending: list[Cell], store: DataStore) -> None:
    """Fit ``pending`` as :func:`local_cells` does, without scoring: what a torchrun rank other
    than 0 does, whose fits take part in DDP training while rank 0 alone scores and writes."""
    cache = make_cache(config)
    for cell, task in _by_group(config, pending, store):
        fit_detector(cell.method, run_settings(config, cell), task, cache, config.model)
