"""Self-contained HTML reports of benchmark output directories: ``oodscope report``.

Public API::

    from oodscope.report import write_report
    path = write_report([Path("runs/mnist-cpu")])          # -> runs/mnist-cpu/report.html
    path = write_report([a, b], out=Path("both.html"))      # several directories, one page

The report only reads files (``results.jsonl``, ``scores/``, ``experiment.json`` (or, in a
directory written before, ``run.json`` and ``suite.json``), ``merges.json``, ``*.png`` and other
notes); it never trains or changes anything. Tables are rendered once, from the results
(:mod:`oodscope.results`); figures the saved scores allow (ROC
curves, histograms, a sweep's figure) are drawn in memory when the directory lacks them. The
results come first; how they were produced follows, folded. The page has no external
resources: figures are embedded as ``data:`` URIs, the CSS is inline. ``import oodscope.report``
loads no torch.
"""

from oodscope.report.inputs import RunDir, read_dir
from oodscope.report.writer import render_report, write_report

__all__ = ["RunDir", "read_dir", "render_report", "write_report"]
