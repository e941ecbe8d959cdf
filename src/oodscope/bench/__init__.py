"""Reproducible, resumable benchmarks of the detectors under the one-class protocol.

Public API::

    from oodscope.bench import BenchConfig, run_bench, PRESETS, preset_settings
    rows = run_bench(BenchConfig(out="runs/mnist", dataset="mnist", methods=["geom", "layers"]))

Output directory: ``results.jsonl`` (one row per finished cell, append-only, resumable),
``summary.md`` (AUROC per class and method) and ``run.json`` (command and settings).
"""

from oodscope.bench.cells import OE_ALL, Cell, expand_cells, row_key
from oodscope.bench.config import BenchConfig
from oodscope.bench.presets import PRESETS, preset_settings
from oodscope.bench.results import ResultsLog
from oodscope.bench.runner import cell_settings, run_bench
from oodscope.bench.summary import render_summary, write_summary

__all__ = [
    "OE_ALL",
    "PRESETS",
    "BenchConfig",
    "Cell",
    "ResultsLog",
    "cell_settings",
    "expand_cells",
    "preset_settings",
    "render_summary",
    "row_key",
    "run_bench",
    "write_summary",
]
