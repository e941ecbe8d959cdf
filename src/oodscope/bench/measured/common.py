"""The runner of the measurement suites (``robustness``, ``verification``): a plan expands into
measurements, each a cell of a multi-class benchmark with ``method`` = the model (or detector) and
what is measured as its ``variant``; each finished measurement is one row of ``results.jsonl`` in
the common format, so a rerun skips finished rows. The suite's plan is recorded in the ``measured``
section of ``experiment.json`` (directories written before kept it in ``robustness.json`` or
``verification.json``); its tables are :mod:`oodscope.bench.measured.tables`'.

A suite gives the runner its cells, a context per seed (the task, the cache and the networks,
built once per seed) and a function per kind of measurement returning ``(metrics, upstream info,
settings)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import oodscope
from oodscope.bench.config import RunOptions
from oodscope.bench.fitting import shared_upstream
from oodscope.bench.lock import directory_lock
from oodscope.bench.loop import Finished, Hooks, Row, run_cells
from oodscope.bench.measured.tables import write_tables
from oodscope.bench.paper.methods import CLASSIFIER_METHOD
from oodscope.bench.summary import write_summary
from oodscope.detectors import UpstreamCache, create, detector_class, settings_for
from oodscope.progress import message
from oodscope.protocols import Cell, DataStore, MultiClass, Task, freeze
from oodscope.results import SCHEMA_VERSION
from oodscope.results.records import write_section

Job = dict[str, Any]
Runner = Callable[[Any, Job], tuple[dict[str, Any], Any, dict[str, Any]]]
ContextFactory = Callable[[Task, int], Any]


def measurement_cell(protocol: MultiClass, method: str, seed: int, preset: str, variant: dict[str, Any]) -> Cell:
    """The benchmark cell of one measurement: ``method`` with ``variant`` as its settings."""
    return protocol.cell(method, seed, preset, 0, tuple(sorted((k, freeze(v)) for k, v in variant.items())))


def classifier_settings(models: dict[str, dict[str, dict[str, Any]]], model: str, preset: str, device: str | None = None,
                        seed: int = 0) -> dict[str, Any]:
    """The settings (as a :data:`CLASSIFIER_METHOD` config) of a suite's classifier ``model``: the preset's, then the
    model's own (``models[preset][model]``), then the seed."""
    return {**settings_for(CLASSIFIER_METHOD, preset, device), **models[preset][model], "seed": seed}


def shared_classifier(settings: dict[str, Any], task: Task, cache: UpstreamCache) -> tuple[Any, Any]:
    """The classifier with ``settings`` trained on ``task`` and its upstream info, from ``cache``
    (trained once for every suite and detector that reads it)."""
    return shared_upstream(detector_class(CLASSIFIER_METHOD), create(CLASSIFIER_METHOD, **settings).config, task, cache)


def fixed_subset(n_total: int, n: int, salt: int) -> np.ndarray:
    """``n`` sorted indices of ``range(n_total)`` drawn with seed ``salt`` (all when ``n`` is 0 or
    not smaller than ``n_total``): the same images for every model and seed."""
    if n == 0 or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(salt).permutation(n_total)[:n])


def run_measured(suite: str, plan: Any, cells: Sequence[tuple[Cell, Job]], runners: dict[str, Runner],
                 context: ContextFactory, out: str | Path, run: RunOptions, command: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished measurement of ``cells`` into ``out`` through the run loop
    (:func:`oodscope.bench.loop.run_cells`) and return every row of the plan.

    ``plan``: a dataclass with ``benchmark`` and ``preset``, recorded in the ``measured`` section of
    ``out/experiment.json``;
    ``runners[job["kind"]](context, job)`` measures one cell; ``context(task, seed)`` builds the
    per-seed state (the cells must be ordered seed by seed)."""
    directory = Path(out)
    jobs = {c.key(): job for c, job in cells}

    def record(all_cells: list[Cell], finished: dict[str, Row], rows: list[Row], pending: list[Cell]) -> None:
        write_section(directory, "measured", {"suite": suite, "plan": asdict(plan), "command": command,
                                              "run": run.to_json(), "oodscope_version": oodscope.__version__})

    def execute(pending: list[Cell]) -> Iterator[Finished]:
        store = DataStore(run.data_root, run.download)
        protocol = MultiClass(plan.benchmark)
        contexts: dict[int, Any] = {}
        for cell in pending:
            if cell.seed not in contexts:
                contexts.clear()
                contexts[cell.seed] = context(protocol.task(protocol.cell(CLASSIFIER_METHOD, cell.seed, plan.preset, 0), store), cell.seed)
            began = time.perf_counter()
            metrics, info, settings = runners[jobs[cell.key()]["kind"]](contexts[cell.seed], jobs[cell.key()])
            yield Finished(cell, {"schema": SCHEMA_VERSION, **cell.row_fields(), "metrics": metrics,
                                  "fit_seconds": None if info is None else round(info.fit_seconds, 3),
                                  "score_seconds": round(time.perf_counter() - began, 3),
                                  "upstream": None if info is None else info.row(), "settings": settings,
                                  "oodscope_version": oodscope.__version__, "torch_version": torch.__version__,
                                  "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    def line(done: Finished, row: Row) -> str:
        return f"{suite}: {done.cell.label} seed {done.cell.seed}: " + ", ".join(
            f"{k} {v:.2f}" for k, v in row["metrics"].items() if isinstance(v, float))

    hooks = Hooks(start=record, after=lambda done, row, rows: write_tables(directory, rows, suite), done=line,
                  announce=lambda pending, all_cells, rows: f"{suite}: {len(pending)} of {len(all_cells)} measurements "
                                                            f"to run -> {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):
        rows = run_cells(directory, [c for c, _ in cells], execute, hooks, message, run.progress, suite, lock=False)
        write_summary(directory, rows)
        write_tables(directory, rows, suite)
    return rows

