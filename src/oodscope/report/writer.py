"""Assembling the report page and writing it atomically: :func:`write_report`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import oodscope
from oodscope.atomic import write_text_atomic
from oodscope.errors import InputError
from oodscope.report.html import esc, page
from oodscope.report.inputs import REPORT, RunDir, read_dir
from oodscope.report.sections import render_dir


def render_report(dirs: list[RunDir], generated: datetime | None = None) -> str:
    """The whole HTML page for already-read directories."""
    when = (generated or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    names = ", ".join(d.path.name or str(d.path) for d in dirs)
    title = f"oodscope report: {names}"
    head = [f"<h1>{esc(title)}</h1>",
            f"<p class=\"meta\">Generated {esc(when)} by oodscope {esc(oodscope.__version__)}. "
            "Numbers are read from the benchmark files; reference values, where shown, come from "
            "the suite tables themselves.</p>"]
    anchors = [f"dir{i + 1}" for i in range(len(dirs))]
    if len(dirs) > 1:
        items = "".join(f"<li><a href=\"#{a}\">{esc(d.path.name or d.path)}</a></li>" for a, d in zip(anchors, dirs))
        head.append(f"<nav><ul>{items}</ul></nav>")
    body = "\n".join(head + [render_dir(d, a) for d, a in zip(dirs, anchors)])
    return page(title, body)


def write_report(dirs: list[Path], out: Path | None = None) -> Path:
    """Write one self-contained ``report.html`` for the benchmark directories ``dirs``.

    Args:
        dirs: Benchmark output directories (see :func:`oodscope.report.read_dir`).
        out: The HTML file to write; default ``DIR/report.html`` when there is one directory
            (required for several). Missing parent directories are created.

    Returns:
        The path written.

    Raises:
        InputError: no directory given, several without ``out``, a directory missing or with
            nothing to report, or ``out`` is a directory.
        DataError: a file in a directory cannot be read or parsed (the message names it).
    """
    paths = [Path(d) for d in dirs]
    if not paths:
        raise InputError("no benchmark directory given")
    if out is None:
        if len(paths) > 1:
            raise InputError(f"{len(paths)} directories given: name the output file (--out FILE)")
        out = paths[0] / REPORT
    out = Path(out)
    read = [read_dir(p) for p in paths]
    if out.is_dir():
        raise InputError(f"{out}: is a directory; give a file name for the report")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out.parent}: cannot create directory ({e.strerror or e})") from None
    write_text_atomic(out, render_report(read))
    return out
