"""Merging benchmark directories: :func:`merge_runs`.

A long grid or suite can be split over processes or machines (``--classes`` / ``--seeds``,
one output directory each) and the finished cells gathered afterwards into one directory,
whose tables are then rebuilt as if one run had made them. For every source row whose cell
the destination lacks, its scores file is copied into ``DEST/scores/`` (atomically, after a
check that it reads back) and then the row is appended to ``DEST/results.jsonl`` with
``merged_from`` naming the source; rows of cells the destination already has are skipped.
``DEST/merges.json`` records each merge: the source, when, how many cells, and the commands
that produced the source (from its ``experiment.json``, or the record files of a directory written
before), which the report shows. Everything is checked before anything is written, and both
directories are locked so that no run is appending to either meanwhile. A measurement suite's plan
(the ``measured`` section of ``experiment.json``, or a source's older ``robustness.json`` /
``verification.json``) comes along into ``DEST/experiment.json`` when the destination has none,
and its ``table.md`` is rebuilt. As on a resume, a partial last line of a results log (left by a killed
run; never a finished cell) is cut away when it is read.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oodscope.atomic import write_atomic, write_json_atomic
from oodscope.bench.consistency import UNCOMPARED, row_settings, settings_diff
from oodscope.bench.lock import directory_lock
from oodscope.bench.experiment import RECORD, RECORD_SCHEMA, Experiment, experiment_of, read_record
from oodscope.bench.summary import write_summary
from oodscope.errors import DataError, InputError
from oodscope.results import MERGES, ResultsLog, field, first_per_cell, load_scores, normalize, normalize_rows, read_merges, recorded_commands, row_key
from oodscope.results.records import SECTIONS, locate_section, read_section, section_label, update_record

RESULTS = "results.jsonl"


@dataclass(frozen=True)
class MergeReport:
    """What :func:`merge_runs` did: rows added, rows skipped (cell already present), per source."""

    added: dict[str, int]
    skipped: dict[str, int]

    @property
    def total_added(self) -> int:
        return sum(self.added.values())


def _group(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["protocol"], row["dataset"], row["method"], row["preset"], field(row, "oe_dataset"))


def _check_settings(source: Path, row: dict[str, Any], reference: dict[str, Any]) -> None:
    """InputError if ``row`` was run with other settings than the reference row of its method
    (the seed and the settings of either row's variant legitimately differ)."""
    mine, theirs = row.get("settings"), reference.get("settings")
    if not (isinstance(mine, dict) and isinstance(theirs, dict)):
        return
    per_cell = ("seed", *(row.get("variant") or {}), *(reference.get("variant") or {}))
    diff = settings_diff(row_settings(reference["method"], theirs), row_settings(row["method"], mine),
                         ignore=(*UNCOMPARED, *per_cell))
    if diff:
        where = " ".join(f"{k} {v}" for k, v in row["protocol_fields"].items())
        raise InputError(
            f"{source}: cell {row['method']} {where} seed {row['seed']} was run "
            f"with different settings ({', '.join(diff)}) than the same method in the destination; "
            "their results cannot share one table"
        )


def _check_experiments(sources: list[Path], dest: Path) -> tuple[type[Experiment], str | None] | None:
    """The experiment the directories hold and its suite (None when none of them tells); InputError
    if they hold different experiments, or the same one with what must agree to merge (its
    ``identity``) differing."""
    held = {d: experiment_of(d) for d in [dest, *sources] if (d / RESULTS).is_file() or (d / RECORD).is_file()}
    if not held:
        return None
    first = dest if dest in held else sources[0]
    cls, suite = held[first]
    describe = lambda kind, name, i: ", ".join(f"{k} {v}" for k, v in i.items()) or (f"suite {name}" if name else f"{kind} results")  # noqa: E731
    target = cls.identity(first)
    for src in sources:
        theirs_cls, theirs_suite = held[src]
        theirs = theirs_cls.identity(src)
        if (theirs_cls, theirs_suite) != (cls, suite) or (target and theirs and theirs != target):
            raise InputError(f"{src} holds {describe(theirs_cls.kind, theirs_suite, theirs)}, {first} holds "
                             f"{describe(cls.kind, suite, target)}; not merged")
        target = target or theirs
    return cls, suite


def source_commands(src: Path) -> list[dict[str, Any]]:
    """The commands recorded in ``src``'s ``experiment.json`` and in each of its sections (with their
    histories; a section of a directory written before: in its own file) as ``{"file", "started",
    "command"}``, ``file`` naming where (``experiment.json``, ``experiment.json: grid``, ``run.json``);
    unreadable records are left out."""
    found: list[tuple[str, dict[str, Any]]] = []
    try:
        header = read_record(src)
    except DataError:
        header = None
    if header is not None:
        found.append((RECORD, header))
    for name in SECTIONS:
        try:
            section = locate_section(src, name)
        except DataError:
            continue
        if section is not None:
            found.append((section_label(section[0], name), section[1]))
    return [{"file": label, "started": started, "command": command}
            for label, data in found for started, command in recorded_commands(data)]


def _record(dest: Path, merges: list[Any], srcs: list[Path], added: dict[str, int], skipped: dict[str, int]) -> None:
    """Write ``DEST/merges.json``: the earlier ``merges`` plus this merge's sources (atomically)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    merges = merges + [{"source": str(s.resolve()), "merged_at": now, "cells_added": added[str(s)],
                        "cells_skipped": skipped[str(s)], "commands": source_commands(s)}
                       for s in srcs if added[str(s)]]
    write_json_atomic(dest / MERGES, {"merges": merges})


def _carry_records(sources: list[Path], dest: Path, held: tuple[type[Experiment], str | None] | None,
                   rows: list[dict[str, Any]]) -> None:
    """The header of ``dest/experiment.json`` when it names no experiment (the experiment and options
    of the first source; no command: nothing ran there), the experiment's own sections
    (:meth:`Experiment.own_records`) a source has and ``dest`` lacks, then ``dest``'s tables rebuilt
    from every row where the experiment can (a paper suite's need its spec, written by running the
    suite there)."""
    if held is None:
        return
    cls, suite = held
    values: dict[str, Any] = {}
    if read_record(dest) is None:
        options = next((r.get("options", {}) for s in sources if (r := read_record(s)) is not None), {})
        values.update({"kind": cls.kind, "suite": suite, "schema": RECORD_SCHEMA, "options": options,
                       "command": None, "history": []})
    for name in cls.own_records(suite):
        if read_section(dest, name) is None:
            theirs = next((r for s in sources if (r := read_section(s, name)) is not None), None)
            if theirs is not None:
                values[name] = theirs
    if values:
        update_record(dest, values)
    try:
        cls.rebuild(dest, list(first_per_cell(rows).values()))
    except (InputError, DataError):
        pass


def merge_runs(sources: list[str | os.PathLike[str]], dest: str | os.PathLike[str]) -> MergeReport:
    """Copy the finished cells of ``sources`` that ``dest`` lacks into ``dest``.

    Args:
        sources: Benchmark output directories (each with a ``results.jsonl``).
        dest: The directory to merge into; created if missing. Its ``summary.md`` is
            rewritten; a suite's tables are rebuilt by rerunning it or ``--tables-only``.

    Returns:
        A :class:`MergeReport` of rows added and skipped per source.

    Raises:
        InputError: a source is missing, is the destination, or is locked by a running
            benchmark; suites, data sets or presets differ; or a cell was run with settings
            other than those of the same method elsewhere in the merge.
        DataError: a results log or scores file is unreadable.
    """
    dest = Path(dest)
    srcs = [Path(s) for s in sources]
    if not srcs:
        raise InputError("nothing to merge: give at least one source directory")
    for src in srcs:
        if not (src / RESULTS).is_file():
            raise InputError(f"{src}: no {RESULTS}; not a benchmark directory")
        if dest.exists() and src.resolve() == dest.resolve():
            raise InputError(f"{src}: is the destination itself")
    if len({s.resolve() for s in srcs}) != len(srcs):
        raise InputError("a source directory is given twice")
    dest.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for d in [dest, *srcs]:
            stack.enter_context(directory_lock(d))
        experiment = _check_experiments(srcs, dest)
        earlier = read_merges(dest)
        log = ResultsLog(dest / RESULTS)
        rows = log.rows()
        present = {row_key(r) for r in rows}
        reference: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in rows:
            reference.setdefault(_group(r), r)
        plan: list[tuple[Path, dict[str, Any], dict[str, Any] | None]] = []
        added = {str(s): 0 for s in srcs}
        skipped = {str(s): 0 for s in srcs}
        for src in srcs:
            raw_rows = ResultsLog(src / RESULTS).load()
            for raw, row in zip(raw_rows, normalize_rows(raw_rows, src / RESULTS)):
                key = row_key(row)
                if key in present:
                    skipped[str(src)] += 1
                    continue
                if experiment is None or experiment[0].one_setting_per_method:
                    _check_settings(src, row, reference.setdefault(_group(row), row))
                plan.append((src, raw, load_scores(src, row)))  # DataError for a damaged file
                present.add(key)
                added[str(src)] += 1
        for src, row, scores in plan:
            rel = row.get("scores_file")
            if rel and scores is not None:
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(src / rel, "rb") as f_in:
                    write_atomic(target, lambda f_out, f_in=f_in: shutil.copyfileobj(f_in, f_out))
            merged = {**row, "merged_from": str(src.resolve())}
            log.append(merged)  # as the source wrote it: its schema version is kept
            rows.append(normalize(merged))
        if plan:
            write_summary(dest, rows)
            _record(dest, earlier, srcs, added, skipped)
            _carry_records(srcs, dest, experiment, rows)
    return MergeReport(added=added, skipped=skipped)
