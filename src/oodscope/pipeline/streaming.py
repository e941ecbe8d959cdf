"""Scoring a collection of image files of any size in bounded batches, in constant memory, into a
CSV that an interrupted run resumes.

Files are read, decoded and scored ``batch`` at a time (decoding on a small thread pool while the
network scores), and each batch's rows are appended to the CSV and flushed before the next batch
is read. A file that cannot be decoded gets a row with verdict ``error`` and the reason, and the
run goes on (``strict``: it stops with the error instead). Rerun with the same files and CSV, and
the rows already written are kept and checked against the files in order; a row cut off by a kill
is dropped and written again, so no row is lost or duplicated.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from oodscope.detectors import Detector
from oodscope.errors import DataError, InputError
from oodscope.pipeline.files import model_geometry, read_for_model

HEADER = ["file", "score", "verdict", "error"]
ERROR_VERDICT = "error"
BATCH = 256


@dataclass
class StreamReport:
    """What :func:`stream_scores` did: rows already in the CSV before this run (resumed), rows
    written now, how many of all rows are ``ood`` and the files it could not decode (with reasons)."""

    resumed: int = 0
    written: int = 0
    n_ood: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def verdict(score: float, threshold: float | None) -> str:
    """``ood`` above the threshold, else ``in``; empty without a threshold."""
    return "" if threshold is None else ("ood" if score > threshold else "in")


def reader_for(detector: Detector) -> Callable[[Path], np.ndarray]:
    """Decodes one file to the detector's ``(C, H, W)`` uint8 input (:func:`read_for_model`)."""
    size, channels = model_geometry(detector)
    return partial(read_for_model, size=size, channels=channels)


def iter_rows(detector: Detector, files: list[Path], read: Callable[[Path], np.ndarray], batch: int = BATCH,
              strict: bool = False, workers: int = 2) -> Iterator[list[list[str]]]:
    """The CSV rows of ``files``, one list per batch, in the order of ``files``. ``read`` decodes one
    file to the model's ``(C, H, W)`` uint8 (or raises :class:`~oodscope.errors.DataError`).

    Raises:
        DataError: with ``strict``, the first file that cannot be decoded.
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")

    def decode(f: Path) -> np.ndarray | str:
        try:
            return read(f)
        except DataError as e:
            if strict:
                raise
            return str(e)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        chunks = (files[i: i + batch] for i in range(0, len(files), batch))
        pending = None
        for chunk in chunks:
            decoded = pool.map(decode, chunk)  # the next batch decodes while this one scores
            if pending is not None:
                yield _score_chunk(detector, *pending)
            pending = (chunk, decoded)
        if pending is not None:
            yield _score_chunk(detector, *pending)


def _score_chunk(detector: Detector, chunk: list[Path], decoded: Iterator[np.ndarray | str]) -> list[list[str]]:
    items = list(decoded)
    good = [i for i, d in enumerate(items) if not isinstance(d, str)]
    scores = detector.score(np.stack([items[i] for i in good])) if good else np.zeros(0)
    by_index = dict(zip(good, scores))
    rows = []
    for i, f in enumerate(chunk):
        if i in by_index:
            s = float(by_index[i])
            rows.append([os.fspath(f), repr(s), verdict(s, detector.threshold), ""])
        else:
            rows.append([os.fspath(f), "", ERROR_VERDICT, str(items[i])])
    return rows


def error_rows(rows: list[list[str]]) -> list[tuple[str, str]]:
    """(file, reason) of the rows whose file could not be decoded."""
    return [(r[0], r[3]) for r in rows if r[2] == ERROR_VERDICT]


def format_rows(rows: list[list[str]], header: bool = False) -> str:
    """CSV text of ``rows`` (with :data:`HEADER` first if ``header``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue()


def _resume(out: Path, files: list[Path]) -> tuple[int, int, list[tuple[str, str]]]:
    """Check the rows already in ``out`` against ``files`` and cut off a partly written last line:
    (rows kept, of them ood, errors among them).

    Raises:
        InputError: ``out`` is not a scores CSV of this run's files (another header, more rows than
            files, or a file out of order).
    """
    data = out.read_bytes()
    if not data:
        return 0, 0, []
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(out, "r+b") as fh:  # drop the row a kill cut short; it is written again
            fh.truncate(len(complete))
    rows = list(csv.reader(io.StringIO(complete.decode("utf-8"))))
    if not rows or rows[0] != HEADER:
        raise InputError(f"{out}: exists and is not a scores CSV of oodscope (header {HEADER}); "
                         "remove it or choose another --out")
    rows = rows[1:]
    if len(rows) > len(files):
        raise InputError(f"{out}: holds {len(rows)} rows but only {len(files)} files are to be scored; "
                         "it was written for other files: remove it or choose another --out")
    for i, row in enumerate(rows):
        if len(row) != len(HEADER) or row[0] != os.fspath(files[i]):
            raise InputError(f"{out}: row {i + 1} is for {row[0] if row else '(empty)'!r}, expected "
                             f"{os.fspath(files[i])!r}: it was written for other files; remove it or choose another --out")
    n_ood = sum(r[2] == "ood" for r in rows)
    return len(rows), n_ood, error_rows(rows)


def stream_scores(detector: Detector, files: list[Path], out: str | os.PathLike[str],
                  read: Callable[[Path], np.ndarray], batch: int = BATCH, strict: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> StreamReport:
    """Score ``files`` into the CSV ``out`` (columns :data:`HEADER`), resuming from the rows it
    already holds. ``progress(done, total)`` is called after each batch.

    Raises:
        InputError: ``out`` holds rows for other files.
        DataError: with ``strict``, a file that cannot be decoded (the rows before it are kept).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = StreamReport()
    if out.exists():
        report.resumed, report.n_ood, report.errors = _resume(out, files)
    done = report.resumed
    if progress:
        progress(done, len(files))
    with open(out, "a", encoding="utf-8", newline="") as fh:
        if fh.tell() == 0:
            fh.write(format_rows([], header=True))
        for rows in iter_rows(detector, files[done:], read, batch, strict):
            fh.write(format_rows(rows))
            fh.flush()
            report.written += len(rows)
            report.n_ood += sum(r[2] == "ood" for r in rows)
            report.errors += error_rows(rows)
            done += len(rows)
            if progress:
                progress(done, len(files))
    return report
