"""Scoring a collection of image files of any size in bounded batches, in constant memory, into a
CSV that an interrupted run resumes.

Files are read, decoded and scored ``batch`` at a time (decoding on a small thread pool while the
network scores), and each batch's rows are appended to the CSV and flushed before the next batch
is read. A file that cannot be decoded gets a row with verdict ``error`` and the reason, and the
run goes on (``strict``: it stops with the error instead). Rerun with the same files and CSV, and
the rows already written are kept and checked against the files in order; a row cut off by a kill
is dropped and written again, so no row is lost or duplicated.

Each row carries the image's conformal p-value (when the model holds calibration scores) and its
verdict by a decision rule (:mod:`oodscope.pipeline.decisions`): the threshold, a per-image level,
Benjamini–Hochberg over all the run's images (verdicts written once every image is scored: the
CSV is rewritten in one atomic step) or an online FDR rule, whose state is saved beside the CSV
(``<csv>.decision.json``) after every batch so that a resumed run continues the same rule.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.atomic import write_text_atomic
from oodscope.detectors import Detector
from oodscope.errors import DataError, InputError
from oodscope.metrics.conformal import flag_bh
from oodscope.pipeline.decisions import Decider, DecisionRule, model_rule, scores_and_classes
from oodscope.pipeline.files import model_geometry, read_for_model

HEADER = ["file", "score", "p_value", "verdict", "error"]
OLD_HEADER = ["file", "score", "verdict", "error"]  # before p-values
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


def decider_for(detector: Any, rule: DecisionRule | None = None, state: dict[str, Any] | None = None) -> Decider:
    """The :class:`Decider` of ``rule`` (default: the rule recorded with the model)."""
    return Decider(detector, model_rule(detector) if rule is None else rule, state)


def deferred(decider: Decider) -> bool:
    """Whether verdicts wait for every image of the run (Benjamini–Hochberg over the run)."""
    return decider.rule.kind == "bh"


def reader_for(detector: Detector) -> Callable[[Path], np.ndarray]:
    """Decodes one file to the detector's ``(C, H, W)`` uint8 input (:func:`read_for_model`)."""
    size, channels = model_geometry(detector)
    return partial(read_for_model, size=size, channels=channels)


def iter_rows(detector: Detector, files: list[Path], read: Callable[[Path], np.ndarray], batch: int = BATCH,
              strict: bool = False, workers: int = 2, decider: Decider | None = None) -> Iterator[list[list[str]]]:
    """The CSV rows of ``files``, one list per batch, in the order of ``files``. ``read`` decodes one
    file to the model's ``(C, H, W)`` uint8 (or raises :class:`~oodscope.errors.DataError`).
    ``decider`` (default: the model's recorded rule) gives p-values and verdicts; with
    Benjamini–Hochberg the verdicts are left empty for :func:`bh_verdicts` to fill in.

    Raises:
        DataError: with ``strict``, the first file that cannot be decoded.
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    decider = decider_for(detector) if decider is None else decider

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
                yield _score_chunk(detector, *pending, decider)
            pending = (chunk, decoded)
        if pending is not None:
            yield _score_chunk(detector, *pending, decider)


def _score_chunk(detector: Detector, chunk: list[Path], decoded: Iterator[np.ndarray | str],
                 decider: Decider) -> list[list[str]]:
    items = list(decoded)
    good = [i for i, d in enumerate(items) if not isinstance(d, str)]
    by_index: dict[int, tuple[float, str, str]] = {}
    if good:
        x = np.stack([items[i] for i in good])
        scores, classes = scores_and_classes(detector, x) if decider.needs_classes else (detector.score(x), None)
        if deferred(decider):
            p, flags = decider.p_values(scores, classes), None
        else:
            p, flags = decider.decide(scores, classes)
        for j, i in enumerate(good):
            shown = "" if p is None else repr(float(p[j]))
            by_index[i] = (float(scores[j]), shown, "" if flags is None else ("ood" if flags[j] else "in"))
    rows = []
    for i, f in enumerate(chunk):
        if i in by_index:
            s, p_text, v = by_index[i]
            rows.append([os.fspath(f), repr(s), p_text, v, ""])
        else:
            rows.append([os.fspath(f), "", "", ERROR_VERDICT, str(items[i])])
    return rows


def bh_verdicts(rows: list[list[str]], q: float) -> list[list[str]]:
    """``rows`` with the verdicts of Benjamini–Hochberg at level ``q`` over all their p-values
    (error rows unchanged)."""
    scored = [i for i, r in enumerate(rows) if r[3] != ERROR_VERDICT]
    flags = flag_bh(np.array([float(rows[i][2]) for i in scored]), q)
    out = [list(r) for r in rows]
    for i, f in zip(scored, flags):
        out[i][3] = "ood" if f else "in"
    return out


def error_rows(rows: list[list[str]]) -> list[tuple[str, str]]:
    """(file, reason) of the rows whose file could not be decoded."""
    return [(r[0], r[4]) for r in rows if r[3] == ERROR_VERDICT]


def format_rows(rows: list[list[str]], header: bool = False) -> str:
    """CSV text of ``rows`` (with :data:`HEADER` first if ``header``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue()


def _resume(out: Path, files: list[Path]) -> list[list[str]]:
    """The rows already in ``out``, checked against ``files``, after cutting off a partly written
    last line.

    Raises:
        InputError: ``out`` is not a scores CSV of this run's files (another header, more rows than
            files, or a file out of order).
    """
    data = out.read_bytes()
    if not data:
        return []
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(out, "r+b") as fh:  # drop the row a kill cut short; it is written again
            fh.truncate(len(complete))
    rows = list(csv.reader(io.StringIO(complete.decode("utf-8"))))
    if rows and rows[0] == OLD_HEADER:
        raise InputError(f"{out}: was written by an older oodscope (no p_value column) and cannot be resumed; "
                         "remove it or choose another --out")
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
    return rows


def decision_path(out: str | os.PathLike[str]) -> Path:
    """Where a scoring run records its decision rule (and an online rule's state): ``<csv>.decision.json``."""
    out = Path(out)
    return out.with_name(out.name + ".decision.json")


def _start_decider(detector: Any, out: Path, rule: DecisionRule | None, rows: list[list[str]]) -> Decider:
    """The run's decider: a resumed run must use the rule it started with; an online rule resumes
    from its saved state and replays the rows written after it was saved (checking their verdicts)."""
    rule = model_rule(detector) if rule is None else rule
    record_file = decision_path(out)
    saved = json.loads(record_file.read_text()) if record_file.exists() and rows else None
    if saved is not None and DecisionRule.from_record(saved.get("decision")) != rule:
        raise InputError(f"{out}: was scored with the decision rule {saved.get('decision')} and cannot be resumed "
                         f"with {rule.record()}; remove it or choose another --out")
    if rows and saved is None and rule.online:
        raise InputError(f"{out}: holds rows but no saved state of the online rule ({record_file}); "
                         "remove it or choose another --out")
    state, done = (saved.get("online"), int(saved.get("rows", 0))) if saved else (None, 0)
    decider = decider_for(detector, rule, state)
    if decider.online is not None:
        for i, row in enumerate(rows[done:], start=done + 1):
            if row[3] == ERROR_VERDICT:
                continue
            got = "ood" if decider.online.test(float(row[2])) else "in"
            if got != row[3]:
                raise InputError(f"{out}: row {i} holds verdict {row[3]!r}, but the saved online rule gives {got!r}; "
                                 "the CSV and its decision record disagree: remove both or choose another --out")
    return decider


def _save_decision(out: Path, decider: Decider, rows: int, model: dict[str, Any] | None) -> None:
    record: dict[str, Any] = {"decision": decider.rule.record(), "rows": rows, "model": model}
    if decider.calibration is not None:
        record["calibration"] = decider.calibration.summary()
    if decider.online is not None:
        record["online"] = decider.online.state()
    write_text_atomic(decision_path(out), json.dumps(record, indent=2, sort_keys=True) + "\n")


def stream_scores(detector: Detector, files: list[Path], out: str | os.PathLike[str],
                  read: Callable[[Path], np.ndarray], batch: int = BATCH, strict: bool = False,
                  progress: Callable[[int, int], None] | None = None, rule: DecisionRule | None = None,
                  model: dict[str, Any] | None = None) -> StreamReport:
    """Score ``files`` into the CSV ``out`` (columns :data:`HEADER`), resuming from the rows it
    already holds, with verdicts by ``rule`` (default: the model's recorded rule), which is recorded
    in ``<out>.decision.json`` with ``model`` (what names the model). ``progress(done, total)`` is
    called after each batch.

    Raises:
        InputError: ``out`` holds rows for other files, or was scored by another rule.
        DataError: with ``strict``, a file that cannot be decoded (the rows before it are kept).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = StreamReport()
    kept = _resume(out, files) if out.exists() else []
    decider = _start_decider(detector, out, rule, kept)
    report.resumed, report.errors = len(kept), error_rows(kept)
    report.n_ood = sum(r[3] == "ood" for r in kept)
    done = report.resumed
    if progress:
        progress(done, len(files))
    with open(out, "a", encoding="utf-8", newline="") as fh:
        if fh.tell() == 0:
            fh.write(format_rows([], header=True))
        _save_decision(out, decider, done, model)
        for rows in iter_rows(detector, files[done:], read, batch, strict, decider=decider):
            fh.write(format_rows(rows))
            fh.flush()
            report.written += len(rows)
            report.n_ood += sum(r[3] == "ood" for r in rows)
            report.errors += error_rows(rows)
            done += len(rows)
            _save_decision(out, decider, done, model)
            if progress:
                progress(done, len(files))
    if deferred(decider) and done == len(files):
        report.n_ood = _finish_bh(out, float(decider.rule.level))
    return report


def _finish_bh(out: Path, q: float) -> int:
    """Fill in the verdicts of Benjamini–Hochberg over every row of ``out`` (one atomic rewrite);
    how many are ``ood``."""
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))[1:]
    decided = bh_verdicts(rows, q)
    write_text_atomic(out, format_rows(decided, header=True))
    return sum(r[3] == "ood" for r in decided)
