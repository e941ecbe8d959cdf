"""What every study shares: its options, the files it writes, and the list of studies."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.atomic import write_text_atomic
from oodscope.data import ImageSet, load
from oodscope.errors import InputError


@dataclass
class StudyOptions:
    """Options of a study run.

    Attributes:
        out: Output directory (created).
        epochs: Training epochs (None: the study's own default).
        seeds: Seeds (a study that shows stability trains once per seed; others use the first).
        n_train: Training images drawn from the training split (None: the study's default).
        data_root: Data root (None: $OODSCOPE_DATA or the user cache).
        download: Download missing data files.
        progress: Show training progress.
        command: The command line, written into the study's note.
    """

    out: Path
    epochs: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    n_train: int | None = None
    data_root: str | os.PathLike[str] | None = None
    download: bool = True
    progress: bool = True
    command: list[str] | None = None

    def data(self, split: str, dataset: str = "mnist") -> ImageSet:
        return load(dataset, split, root=self.data_root, download=self.download)


@dataclass
class StudyOutput:
    """What a study produced: figure files, a table of numbers, and lines of its note."""

    figures: list[Path] = field(default_factory=list)
    table: tuple[list[str], list[list[Any]]] | None = None
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Study:
    """A named study: the work it comes from (``source``, a citation), what it shows, and the
    function running it."""

    name: str
    source: str
    shows: str
    run: Callable[[StudyOptions], StudyOutput]


def markdown_table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> list[str]:
    """Lines of a Markdown table, columns from ``numeric_from`` on right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|",
            *["| " + " | ".join(map(str, r)) + " |" for r in rows]]


def subset(images: ImageSet, n: int | None, seed: int) -> ImageSet:
    """``n`` images drawn at random (all when ``n`` is None or not smaller)."""
    if n is None or n >= len(images):
        return images
    if n < 1:
        raise InputError(f"--n-train must be positive, got {n}")
    idx = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    return images.subset(idx)


def write_outputs(study: Study, options: StudyOptions, output: StudyOutput) -> list[Path]:
    """The study's CSV and Markdown note, written atomically beside its figures."""
    out = Path(options.out)
    written = list(output.figures)
    lines = [f"# {study.name}: {study.shows}", "", f"From {study.source}.", ""]
    if options.command:
        lines += ["Command:", "", "    " + " ".join(options.command), ""]
    lines += output.lines
    if output.table is not None:
        header, rows = output.table
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        written.append(write_text_atomic(out / f"{study.name}.csv", buf.getvalue()))
    written.append(write_text_atomic(out / f"{study.name}.md", "\n".join(lines).rstrip() + "\n"))
    return written
