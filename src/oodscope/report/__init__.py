"""Self-contained HTML reports of benchmark output directories: ``oodscope report``.

Public API::

    from oodscope.report import write_report
    path = write_report([Path("runs/mnist-cpu")])          # -> runs/mnist-cpu/report.html
    path = write_report([a, b], out=Path("both.html"))      # several directories, one page

The report only reads files (``results.jsonl``, ``summary.md``, ``table.md``/``table.csv``,
``run.json``, ``suite.json`` and ``*.png``); it never trains or evaluates anything. The page
has no external resources: figures are embedded as ``data:`` URIs, the CSS is inline.
"""

from oodscope.report.inputs import RunDir, read_dir
from oodscope.report.writer import render_report, write_report

__all__ = ["RunDir", "read_dir", "render_report", "write_report"]
