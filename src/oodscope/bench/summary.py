"""``summary.md``: the tables of a benchmark's finished cells (:mod:`oodscope.results.summary`),
rewritten atomically after every cell."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.results import render_summary


def write_summary(directory: str | os.PathLike[str], rows: list[dict[str, Any]], total_cells: int | None = None,
                  grid_finished: int | None = None) -> Path:
    """Write ``directory/summary.md`` for the (normalised) ``rows`` atomically: a temporary file in
    ``directory`` replaced into place with ``os.replace``."""
    return write_text_atomic(Path(directory) / "summary.md", render_summary(rows, total_cells, grid_finished))
