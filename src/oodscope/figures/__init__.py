"""Figures of benchmark results (matplotlib, Agg backend, PNG).

Public API (each takes a results directory and returns the written paths)::

    from oodscope.figures import write_figures, rebuild_outputs
    write_figures("runs/fig4")      # fig4.png, roc_mnist.png, hist_mnist.png, fig3_class0.png, ...
    rebuild_outputs("runs/fig4")    # also table.md / table.csv of a suite, without training

* :func:`plot_sweep`: the paper's Figs. 4-5 (AUROC vs outlier budget, error bars over seeds).
* :func:`plot_roc`, :func:`plot_hist`: ROC curves per class and ID-vs-OOD score histograms.
* :func:`plot_fig3`: the paper's Fig. 3 analysis (class-0/8 images GEOM rejects, with
  ``layers``' verdict).

This package sits above :mod:`oodscope.bench` and loads no torch; the command line writes
figures with it and the report draws the missing ones in memory.
"""

from oodscope.figures.curves import figure_names, hist_figure, plot_hist, plot_roc, roc_figure, scored_cells
from oodscope.figures.fig3 import fig3_selection, plot_fig3, youden_threshold
from oodscope.figures.outputs import rebuild_outputs, write_figures
from oodscope.figures.style import png_bytes
from oodscope.figures.sweeps import plot_sweep, sweep_figure

__all__ = [
    "fig3_selection",
    "figure_names",
    "hist_figure",
    "plot_fig3",
    "plot_hist",
    "plot_roc",
    "plot_sweep",
    "png_bytes",
    "rebuild_outputs",
    "roc_figure",
    "scored_cells",
    "sweep_figure",
    "write_figures",
    "youden_threshold",
]
