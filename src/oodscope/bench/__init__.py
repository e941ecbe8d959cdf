"""Reproducible, resumable benchmarks of the detectors under the one-class protocol.

Public API::

    from oodscope.bench import BenchConfig, run_bench, PRESETS, preset_settings
    rows = run_bench(BenchConfig(out="runs/mnist", dataset="mnist", methods=["geom", "layers"]))

Output directory: ``results.jsonl`` (one row per finished cell, append-only, resumable),
``summary.md`` (AUROC per class and method), ``run.json`` (command and settings) and
``scores/`` (each cell's test scores, see :mod:`oodscope.bench.scores`).

Suites (:mod:`oodscope.bench.suites`) reproduce the paper's Tables 2-3 and Figs. 4-5::

    spec = make_spec("table3", "mnist", "cpu", n_classes=10)
    run_suite(spec, BenchConfig(out="runs/table3"))   # also writes table.md, table.csv, suite.json
"""

from oodscope.bench.cells import OE_ALL, Cell, expand_cells, row_key
from oodscope.bench.config import BenchConfig
from oodscope.bench.presets import PRESETS, preset_settings
from oodscope.bench.results import ResultsLog
from oodscope.bench.runner import cell_settings, run_bench
from oodscope.bench.scores import load_scores
from oodscope.bench.suite_run import load_spec, read_suite, rebuild_tables, run_suite
from oodscope.bench.suites import SUITES, SuiteSpec, make_spec, suite_cells
from oodscope.bench.summary import render_summary, write_summary

__all__ = [
    "OE_ALL",
    "PRESETS",
    "SUITES",
    "BenchConfig",
    "Cell",
    "ResultsLog",
    "SuiteSpec",
    "cell_settings",
    "expand_cells",
    "load_scores",
    "load_spec",
    "make_spec",
    "preset_settings",
    "read_suite",
    "rebuild_tables",
    "render_summary",
    "row_key",
    "run_bench",
    "run_suite",
    "suite_cells",
    "write_summary",
]
