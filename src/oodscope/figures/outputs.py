"""Every figure of a results directory, drawn from what its run saved (results and scores files),
and rebuilding a directory's tables and figures without training."""

from __future__ import annotations

import os
from pathlib import Path

from oodscope.bench.experiment import experiment_of, rows_of
from oodscope.bench.paper.files import read_suite
from oodscope.bench.paper.methods import RELIABILITY_PANELS
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.figures.curves import plot_hist, plot_roc, scored_cells
from oodscope.figures.fig3 import plot_fig3
from oodscope.figures.sweeps import plot_sweep


def write_figures(directory: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Draw what the directory's results allow: ``fig4.png``/``fig5.png`` (sweep suites),
    ``roc_<name>.png``, ``hist_<name>.png``, ``fig3_class<c>.png`` and ``reliability_seed<s>.png``
    (cells that saved their logits). Returns the paths."""
    paths: list[Path] = []
    info = read_suite(directory)
    if info is not None:
        paths += plot_sweep(directory, SuiteSpec.from_json(info["spec"]))
    scored = scored_cells(directory)
    paths += plot_roc(directory, scored)
    paths += plot_hist(directory, scored)
    paths += plot_fig3(directory, data_root, scored=scored)
    rows = rows_of(Path(directory))
    if any(r.get("method") in RELIABILITY_PANELS for r in rows):  # torch (the calibration module): only then
        from oodscope.figures.calibration_suite import write_reliability

        paths += write_reliability(directory, rows)
    return paths


def rebuild_outputs(directory: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Rewrite a directory's tables (as its experiment builds them) and figures from its record,
    ``results.jsonl`` and ``scores/`` (no training). Returns the written paths.

    Raises:
        InputError: the directory holds no results.
    """
    directory = Path(directory)
    cls, _ = experiment_of(directory)
    return cls.rebuild(directory, rows_of(directory), data_root).paths + write_figures(directory, data_root)
