"""The paper's Figs. 4 and 5: class-averaged AUROC against the outlier budget, per method.

Each method with outliers is a line with error bars (mean ± std over complete seeds); a method
without (GEOM) is a dashed horizontal line with a ±std band. Fig. 4's x axis is
the number of known outliers on a log2 scale; Fig. 5's the number of outlier classes as
categories.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from oodscope.bench.paper.files import load_spec
from oodscope.bench.paper.stats import sweep
from oodscope.bench.paper.suites import SuiteSpec
from oodscope.figures.style import METHOD_NAMES, colour, new_figure, save_png
from oodscope.results import read_results


def _positions(spec: SuiteSpec) -> tuple[list[float], list[str], bool]:
    """x positions and tick labels of the swept values; True when the axis is log2."""
    xs = spec.n_oe if spec.definition.axis == "n_oe" else spec.oe_classes
    labels = [str(x) for x in xs]
    if spec.definition.axis == "n_oe" and all(isinstance(x, int) for x in xs):
        return [float(x) for x in xs], labels, True
    return [float(i) for i in range(len(xs))], labels, False


def sweep_figure(spec: SuiteSpec, rows: list[dict[str, Any]]) -> Figure | None:
    """The figure of a sweep suite (``fig4``/``fig5``) from its (normalised) rows; None for a table suite."""
    if spec.definition.axis is None:
        return None
    stats, flat = sweep(spec, rows)
    xs = spec.n_oe if spec.definition.axis == "n_oe" else spec.oe_classes
    pos, ticks, log2 = _positions(spec)
    fig = new_figure(6.0, 4.2)
    ax = fig.subplots()
    drawn = 0
    for method, stat in flat.items():
        if stat is None:
            continue
        ax.axhline(stat.mean, ls="--", color=colour(method), label=f"{METHOD_NAMES.get(method, method)} (no outliers)")
        ax.axhspan(stat.mean - stat.std, stat.mean + stat.std, color=colour(method), alpha=0.15, lw=0)
        drawn += 1
    for i, (method, points) in enumerate(stats.items()):
        shift = i - (len(stats) - 1) / 2  # dodge the methods a little so error bars stay apart
        dodged = [p * 2 ** (0.05 * shift) if log2 else p + 0.06 * shift for p in pos]
        have = [(p, points[x]) for p, x in zip(dodged, xs) if points[x] is not None]
        if not have:
            continue
        ax.errorbar([p for p, _ in have], [s.mean for _, s in have], yerr=[s.std for _, s in have],
                    marker="o", capsize=3, lw=1.5, color=colour(method, i), label=METHOD_NAMES.get(method, method))
        drawn += 1
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xticks(pos, ticks)
    ax.minorticks_off()
    ax.set_xlabel("number of known outliers" if spec.definition.axis == "n_oe"
                  else f"number of outlier classes ({spec.n_oe[0]} outliers)")
    ax.set_ylabel("AUROC (%), mean over classes")
    title = f"{spec.suite}: {spec.dataset}, outliers from {spec.oe_dataset}, preset {spec.preset}"
    shown = [s for points in stats.values() for s in points.values() if s is not None] + [s for s in flat.values() if s]
    if shown:
        lo, hi = min(s.n_seeds for s in shown), max(s.n_seeds for s in shown)
        n = str(lo) if lo == hi else f"{lo}–{hi}"
        title += f"\nmean ± std over {n} of {shown[0].total_seeds} seeds (those with every class finished)"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    else:
        ax.set_ylim(50, 100)
        ax.text(0.5, 0.5, "no seed with every class finished yet", ha="center", va="center", transform=ax.transAxes)
    return fig


def plot_sweep(directory: str | os.PathLike[str], spec: SuiteSpec | None = None) -> list[Path]:
    """Write ``fig4.png`` or ``fig5.png`` for a sweep suite directory; [] for other suites."""
    spec = load_spec(directory) if spec is None else spec
    fig = sweep_figure(spec, read_results(Path(directory) / "results.jsonl")[0])
    return [] if fig is None else [save_png(fig, Path(directory) / f"{spec.suite}.png")]
