"""ROC curves and ID-vs-OOD score histograms from the saved per-cell scores.

``roc_<name>.png``: one panel per class (one panel when the protocol has none), one ROC curve
per method (AUROC in the legend). ``hist_<name>.png``: a grid of classes (rows) x methods
(columns), each panel the density-normalised histograms of the in-distribution and OOD test
scores. ``<name>`` is the data set (one-class) or the benchmark (multi-class). The figures are
built as objects (:func:`roc_figure`, :func:`hist_figure`), so the report can embed them
without writing files. This module loads no torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from matplotlib.figure import Figure

from oodscope.figures.rows import Panel, finished_rows, representatives
from oodscope.figures.style import ID_COLOUR, OOD_COLOUR, colour, new_figure, save_png
from oodscope.results import load_scores

Scored = dict[Panel, tuple[dict[str, Any], dict[str, np.ndarray]]]


def scored_cells(directory: str | os.PathLike[str], rows: list[dict[str, Any]] | None = None) -> Scored:
    """Representative rows (see :func:`~oodscope.figures.rows.representatives`) of the directory's
    rows to draw (or of ``rows``, already read) with their scores; rows whose scores file is
    missing are left out."""
    out: Scored = {}
    for key, row in representatives(finished_rows(directory) if rows is None else rows).items():
        arrays = load_scores(directory, row)
        if arrays is not None and arrays["is_ood"].any() and not arrays["is_ood"].all():
            out[key] = (row, arrays)
    return out


def figure_names(scored: Scored) -> list[str]:
    """The figures the scores allow (data sets or benchmarks), sorted."""
    return sorted({k[0] for k in scored})


def _layout(scored: Scored, name: str) -> tuple[list[Any], list[str]]:
    keys = [k for k in scored if k[0] == name]
    classes = sorted({k[1] for k in keys}, key=lambda c: (c is None, c if c is not None else 0))
    labels = list(dict.fromkeys(k[2] for k in keys))
    return classes, labels


def _panel_title(name: str, c: Any) -> str:
    return name if c is None else f"class {c}"


def roc_figure(scored: Scored, name: str) -> Figure:
    """ROC curves of figure ``name``: a panel per class, a curve per method."""
    classes, labels = _layout(scored, name)
    ncols = min(5, len(classes))
    nrows = math.ceil(len(classes) / ncols)
    fig = new_figure(3.0 * ncols + (1.0 if ncols == 1 else 0.0), 2.9 * nrows + (0.6 if nrows == 1 else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(classes):]:
        ax.set_visible(False)
    for ax, c in zip(axes.flat, classes):
        for i, label in enumerate(labels):
            if (name, c, label) not in scored:
                continue
            _, a = scored[(name, c, label)]
            fpr, tpr, _ = roc_curve(a["is_ood"], a["scores"])
            auc = 100 * roc_auc_score(a["is_ood"], a["scores"])
            ax.plot(fpr, tpr, lw=1.2, color=colour(label, i), label=f"{label} {auc:.1f}")
        ax.plot([0, 1], [0, 1], ls=":", lw=0.8, color="black")
        ax.set(title=_panel_title(name, c), xlim=(0, 1), ylim=(0, 1.01))
        ax.set_xlabel("FPR (ID rejected)", fontsize=8)
        ax.set_ylabel("TPR (OOD detected)", fontsize=8)
        ax.legend(fontsize=6, loc="lower right", title="AUROC", title_fontsize=6)
    fig.suptitle(f"ROC per class, {name} (OOD = positive)" if classes != [None] else f"ROC, {name} (OOD = positive)")
    return fig


def plot_roc(directory: str | os.PathLike[str], scored: Scored | None = None) -> list[Path]:
    """Write ``roc_<name>.png`` per data set or benchmark in the directory; return the paths."""
    scored = scored_cells(directory) if scored is None else scored
    return [save_png(roc_figure(scored, name), Path(directory) / f"roc_{name}.png") for name in figure_names(scored)]


def _bins(scores: np.ndarray, n: int = 40) -> np.ndarray:
    lo, hi = np.percentile(scores, [0.5, 99.5])
    if not hi > lo:
        lo, hi = float(scores.min()) - 0.5, float(scores.max()) + 0.5
    return np.linspace(lo, hi, n + 1)


WRAP = 6  # methods per row when a figure has a single class (a multi-class benchmark)


def hist_figure(scored: Scored, name: str) -> Figure:
    """Score histograms of figure ``name``: classes (rows) x methods (columns), ID vs OOD; with a
    single class, the methods wrap onto rows of ``WRAP``."""
    classes, labels = _layout(scored, name)
    if len(classes) == 1 and len(labels) > WRAP:
        grid = [[(classes[0], lab) for lab in labels[k:k + WRAP]] for k in range(0, len(labels), WRAP)]
    else:
        grid = [[(c, lab) for lab in labels] for c in classes]
    cols = max(len(r) for r in grid)
    fig = new_figure(max(2.3 * cols, 5.5), 1.7 * len(grid) + 0.8)
    axes = fig.subplots(len(grid), cols, squeeze=False)
    first = None
    for i, row in enumerate(grid):
        for j in range(cols):
            ax = axes[i, j]
            if j >= len(row) or (name, *row[j]) not in scored:
                ax.set_axis_off()
                continue
            c, label = row[j]
            _, a = scored[(name, c, label)]
            s, ood = a["scores"].astype(np.float64), a["is_ood"]
            bins = _bins(s)
            ax.hist(np.clip(s[~ood], bins[0], bins[-1]), bins=bins, density=True, alpha=0.55,
                    color=ID_COLOUR, label="ID")
            ax.hist(np.clip(s[ood], bins[0], bins[-1]), bins=bins, density=True, alpha=0.55,
                    color=OOD_COLOUR, label="OOD")
            first = ax if first is None else first
            ax.tick_params(labelsize=6)
            ax.set_yticks([])
            if i == 0 or len(classes) == 1:
                ax.set_title(label, fontsize=8)
            if j == 0:
                ax.set_ylabel(_panel_title(name, c), fontsize=8)
    if first is not None:
        first.legend(fontsize=6)
    fig.suptitle(f"Test scores, {name}: ID vs OOD\n(density; higher = more OOD)")
    return fig


def plot_hist(directory: str | os.PathLike[str], scored: Scored | None = None) -> list[Path]:
    """Write ``hist_<name>.png`` per data set or benchmark in the directory; return the paths."""
    scored = scored_cells(directory) if scored is None else scored
    return [save_png(hist_figure(scored, name), Path(directory) / f"hist_{name}.png") for name in figure_names(scored)]
