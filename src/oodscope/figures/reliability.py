"""Reliability diagrams (Guo et al. 2017, Fig. 1; Takahashi's lecture notes "Deep learning:
reliability of inference", n.d.): per confidence bin, the accuracy of the predictions falling in it
against the bin's confidence; the diagonal is perfect calibration, bars below it over-confidence."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from oodscope.calibration import ReliabilityBins
from oodscope.figures.style import new_figure


def reliability_figure(panels: dict[str, tuple[ReliabilityBins, str]], title: str) -> Figure:
    """One panel per entry ``name -> (bins, a line under the name, e.g. the ECE)``, side by side."""
    fig = new_figure(3.4 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, (r, note)) in zip(axes, panels.items()):
        width = np.diff(r.edges)
        acc = np.nan_to_num(r.accuracy, nan=0.0)
        ax.bar(r.edges[:-1], acc, width=width, align="edge", edgecolor="black", color="#4c72b0", label="accuracy")
        gap = np.where(r.counts > 0, (r.edges[:-1] + r.edges[1:]) / 2 - acc, 0.0)
        ax.bar(r.edges[:-1], gap, bottom=acc, width=width, align="edge", color="#dd8452", alpha=0.45,
               label="gap to the bin centre")
        ax.plot([0, 1], [0, 1], "k:", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(f"{name}\n{note}", fontsize=9)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    return fig
