"""Every figure of a results directory, and rebuilding a suite's tables and figures without training."""

from __future__ import annotations

import os
from pathlib import Path

from oodscope.bench.paper.files import read_suite, rebuild_tables
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.figures.curves import plot_hist, plot_roc, scored_cells
from oodscope.figures.fig3 import plot_fig3
from oodscope.figures.sweeps import plot_sweep


def write_figures(directory: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Draw what the directory's results allow: ``fig4.png``/``fig5.png`` (sweep suites),
    ``roc_<name>.png``, ``hist_<name>.png`` and ``fig3_class<c>.png``. Returns the paths."""
    paths: list[Path] = []
    info = read_suite(directory)
    if info is not None:
        paths += plot_sweep(directory, SuiteSpec.from_json(info["spec"]))
    scored = scored_cells(directory)
    paths += plot_roc(directory, scored)
    paths += plot_hist(directory, scored)
    paths += plot_fig3(directory, data_root, scored=scored)
    return paths


def rebuild_outputs(directory: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Rewrite a suite directory's ``table.md``, ``table.csv`` and figures from ``suite.json``,
    ``results.jsonl`` and ``scores/`` (no training). Returns the written paths.

    Raises:
        InputError: the directory holds no suite.json.
    """
    return rebuild_tables(directory) + write_figures(directory, data_root)
