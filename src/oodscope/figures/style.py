"""Shared plotting set-up: the Agg backend, colours per method, atomic PNG writing.

Figures are built as :class:`matplotlib.figure.Figure` objects (no pyplot state), so
plotting never opens a window and figures are freed when they go out of scope.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything may import pyplot: files only, never a window

from matplotlib.figure import Figure  # noqa: E402

from oodscope.atomic import write_atomic  # noqa: E402
from oodscope.bench.paper.methods import METHOD_COLOURS, METHOD_NAMES  # noqa: E402,F401

DPI = 110
ID_COLOUR = "tab:blue"
OOD_COLOUR = "tab:red"
IN_VERDICT = "tab:green"
OOD_VERDICT = "tab:red"
_CYCLE = ["tab:blue", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:red", "black", "gold"]


def colour(label: str, index: int = 0) -> str:
    """A stable colour for a method label: the paper's methods keep theirs, others (variants, other
    methods) take the cycle by ``index``."""
    return METHOD_COLOURS.get(label) or _CYCLE[index % len(_CYCLE)]


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with a constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI`, atomically (temporary file, then os.replace)."""
    return write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI))


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes at :data:`DPI` (for embedding without writing a file)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
