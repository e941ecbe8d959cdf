"""Figures of benchmark results (matplotlib, Agg backend, PNG).

Public API (each takes a results directory and returns the written paths)::

    from oodscope.figures import write_figures, rebuild_outputs
    write_figures("runs/fig4")      # fig4.png, roc_mnist.png, hist_mnist.png, fig3_class0.png, ...
    rebuild_outputs("runs/fig4")    # also table.md / table.csv of a suite, without training

* :func:`plot_sweep`: the paper's Figs. 4-5 (AUROC vs outlier budget, error bars over seeds).
* :func:`plot_roc`, :func:`plot_hist`: ROC curves per class and ID-vs-OOD score histograms.
* :func:`plot_fig3`: the paper's Fig. 3 analysis (class-0/8 images GEOM rejects, with
  ``layers``' verdict).

This package sits above :mod:`oodscope.bench`; nothing in the library imports it except
the command line.
"""

from oodscope.figures.curves import plot_hist, plot_roc
from oodscope.figures.fig3 import fig3_selection, plot_fig3, youden_threshold
from oodscope.figures.outputs import rebuild_outputs, write_figures
from oodscope.figures.sweeps import plot_sweep

__all__ = ["fig3_selection", "plot_fig3", "plot_hist", "plot_roc", "plot_sweep", "rebuild_outputs", "write_figures", "youden_threshold"]
