"""Reproducible, resumable benchmarks of the detectors under any protocol.

Public API::

    from oodscope.bench import BenchConfig, RunOptions, run_bench
    from oodscope.protocols import OneClass, MultiClass
    rows = run_bench(BenchConfig(out="runs/mnist", protocol=OneClass("mnist"), methods=["geom", "layers"]))

Output directory: ``results.jsonl`` (one row per finished cell, append-only, resumable; schema
in :mod:`oodscope.results.schema`), ``summary.md``, ``experiment.json`` (the one record: command
and settings under its ``grid`` section, see :mod:`oodscope.results.records`) and ``scores/`` (each
cell's test scores).

Suites (:mod:`oodscope.bench.paper.suites`) reproduce the paper's Tables 2-3 and Figs. 4-5::

    spec = make_spec("table3", "mnist", "cpu", n_classes=10, unsupervised=["geom"])
    run_suite(spec, BenchConfig(out="runs/table3"))   # also table.md, table.csv; the spec in experiment.json

Layout: the run engine at the top (:mod:`~oodscope.bench.experiment`, the ``Experiment`` contract,
its registry and ``experiment.json``; :mod:`~oodscope.bench.loop`, the one run loop; the grid's
cells, executors, merge), one module per kind of run in :mod:`oodscope.bench.experiments`, and the
families' machinery in :mod:`oodscope.bench.paper`, :mod:`oodscope.bench.measured` and
:mod:`oodscope.bench.sanity`. ``oodscope bench`` also writes the experiment (kind, suite, options,
commands) at the head of ``experiment.json``; a directory holds no other record file.

The names below load lazily, so the torch-free parts (suites, tables, merge, records) can be
imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchConfig": "config",
    "RunOptions": "config",
    "run_bench": "runner",
    "plan": "runner",
    "run_suite": "paper.run",
    "load_spec": "paper.files",
    "read_suite": "paper.files",
    "rebuild_tables": "paper.files",
    "SUITES": "paper.suites",
    "SuiteSpec": "paper.suites",
    "make_spec": "paper.suites",
    "suite_cells": "paper.suites",
    "merge_runs": "merge",
    "write_summary": "summary",
    "run_demo": "sanity.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load ``name`` from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
