"""Experiments: every kind of benchmark run is one registered :class:`Experiment`.

An experiment declares what ``oodscope bench`` needs to know about it — its kind, the ``--suite``
names it answers, the options it takes (any other option given is refused by this declaration),
the executors it runs on and whether it runs under ``torchrun`` — and it implements how it runs
(its cells go through the one run loop, :func:`oodscope.bench.loop.run_cells`), how its tables
are rebuilt from the results (``--tables-only``, after a merge), what the report shows of it, and
what two of its directories must share to be merged. The experiments of oodscope are the modules
of :mod:`oodscope.bench.experiments`, found as the detectors are (:func:`experiments`); a user's
experiment registers itself with :func:`register_experiment` from its own file.

Each directory records its experiment in ``experiment.json`` (``kind``, ``suite``, ``schema``,
``options``, the command and its history), its one record file: the parts that ran there add
their sections to it (``grid``, ``paper_suite``, ``measured``; see :mod:`oodscope.results.records`,
which also reads them from the separate files of directories written before). A directory whose
record has no ``kind`` (sections only: a grid run from Python, a run killed before its end) or
that was written before ``experiment.json`` existed is recognised by :func:`experiment_of` from
its sections.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from oodscope.bench.config import RunOptions
from oodscope.errors import DataError, InputError
from oodscope.results import ResultsLog, first_per_cell
from oodscope.results.records import (RECORD, RECORD_SCHEMA, SECTIONS, locate_section, read_record_file, read_section,
                                      update_record)
from oodscope.results.tables import Table

# options of ``oodscope bench`` every experiment takes: where and how it runs, not what it measures
RUN_OPTIONS = frozenset({"out", "suite", "tables_only", "device", "data_root", "cache_dir", "disk_cache", "download",
                         "progress", "threads", "executor", "address", "cpus_per_cell", "retries"})


@dataclass
class Outcome:
    """What a finished run shows: the text printed (its table) and the files it wrote."""

    text: str | None = None
    paths: list[Path] = field(default_factory=list)


@dataclass
class ReportTables:
    """The headline of an experiment's directory in the report: a title, notes and its tables
    (each under a heading)."""

    title: str | None = None
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)


def flag(option: str) -> str:
    """``n_oe`` -> ``--n-oe`` (the command-line spelling of an option)."""
    return "--" + {"variants": "variant", "settings": "set", "oe_dataset": "oe"}.get(option, option).replace("_", "-")


class Experiment:
    """One kind of benchmark run. Subclasses set the class attributes and implement :meth:`run`;
    the directory-side methods have defaults that suit a directory of plain results."""

    kind: ClassVar[str] = ""
    suites: ClassVar[tuple[str, ...]] = ()  # the --suite names it answers; () = no --suite (the plain grid)
    takes: ClassVar[frozenset[str]] = frozenset()  # options beyond RUN_OPTIONS
    refusal: ClassVar[str] = ""  # why the options it does not take make no sense for it, shown when refused
    executors: ClassVar[tuple[str, ...]] = ("local", "ray")
    torchrun: ClassVar[bool] = False  # runs under torchrun (several ranks)
    one_setting_per_method: ClassVar[bool] = True  # a merge refuses rows of a method run with other settings
    figures: ClassVar[str] = "none"  # figures (oodscope.figures) drawn: "always" (after a run too), "redraw" (--tables-only), "none"
    help: ClassVar[str] = ""  # one sentence for ``oodscope bench --help``

    def __init__(self, suite: str | None, options: dict[str, Any]) -> None:
        self.suite = suite
        self.options = options

    @classmethod
    def check_options(cls, suite: str | None, given: set[str], executor: str = "local") -> None:
        """InputError naming every option given that this experiment does not take, or an
        executor it does not run on."""
        stray = sorted(given - RUN_OPTIONS - cls.takes)
        what = f"--suite {suite}" if suite else "a plain grid"
        if stray:
            reason = f" ({cls.refusal})" if cls.refusal else ""
            raise InputError(f"{what} does not take {', '.join(flag(o) for o in stray)}{reason}")
        if executor not in cls.executors:
            raise InputError(f"{what} runs with --executor {' or '.join(cls.executors)}, not {executor}")

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        """Run (or resume) the experiment into ``out``; every cell goes through the run loop."""
        raise NotImplementedError

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        """Rewrite the directory's tables from its results, without running anything (``--tables-only``
        and after a merge). The default: the plain summary only."""
        return Outcome()

    @classmethod
    def report(cls, directory: Path, rows: list[dict[str, Any]]) -> ReportTables | None:
        """The experiment's own tables for the report (None: the tables of the rows, per configuration)."""
        return None

    @classmethod
    def own_records(cls, suite: str | None) -> tuple[str, ...]:
        """Sections of ``experiment.json`` of its own that its tables need, carried by a merge
        (:data:`oodscope.results.records.SECTIONS`)."""
        return ()

    @classmethod
    def identity(cls, directory: Path) -> dict[str, Any]:
        """What two directories of this experiment must share to be merged (compared key by key)."""
        return {}


_REGISTRY: dict[str, type[Experiment]] = {}


def register_experiment(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: register an experiment under its ``kind``.

    Raises:
        ValueError: no kind, or a kind or ``--suite`` name already taken by another experiment.
    """
    if not cls.kind:
        raise ValueError(f"{cls.__name__}: an experiment needs a kind")
    for other in _REGISTRY.values():
        if other is not cls and other.__qualname__ != cls.__qualname__:
            clash = set(other.suites) & set(cls.suites)
            if other.kind == cls.kind or clash or (not other.suites and not cls.suites):
                raise ValueError(f"{cls.__name__}: kind {cls.kind!r} or suite {sorted(clash) or 'grid'} "
                                 f"is already {other.__name__}'s")
    _REGISTRY[cls.kind] = cls
    return cls


def experiments() -> dict[str, type[Experiment]]:
    """Every registered experiment by kind (oodscope's own are imported on first use)."""
    package = importlib.import_module("oodscope.bench.experiments")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return dict(_REGISTRY)


def suite_names() -> list[str]:
    """Every ``--suite`` name, sorted."""
    return sorted(s for cls in experiments().values() for s in cls.suites)


def for_suite(suite: str | None) -> type[Experiment]:
    """The experiment that runs ``--suite suite`` (None: the plain grid).

    Raises:
        InputError: no experiment answers that name.
    """
    for cls in experiments().values():
        if (suite in cls.suites) if suite is not None else not cls.suites:
            return cls
    raise InputError(f"--suite {suite}: no such experiment; known: {', '.join(suite_names())}")


def write_record(directory: Path, experiment: Experiment, command: list[str] | None, started: str | None = None,
                 old: dict[str, Any] | None = None) -> None:
    """Write the header of ``DIR/experiment.json`` atomically, keeping its sections; the command of
    the earlier record ``old`` (read by :func:`check_directory` before the run) moves to ``history``."""
    history = [] if old is None else [*old.get("history", []), {k: old.get(k) for k in ("command", "started")}]
    update_record(directory, {
        "kind": experiment.kind, "suite": experiment.suite, "schema": RECORD_SCHEMA,
        "options": {k: v for k, v in sorted(experiment.options.items()) if k in experiment.takes and v not in (None, ())},
        "command": command or sys.argv, "started": started or now(), "history": history,
    })


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_directory(directory: Path, experiment: Experiment) -> dict[str, Any] | None:
    """The directory's experiment record (None when it has none); InputError when it holds the results
    of another experiment (recognised from the record's sections when it has no ``kind``)."""
    old = read_record(directory)
    if old is not None:
        kind, suite = old.get("kind"), old.get("suite")
    elif directory.is_dir() and (directory / "results.jsonl").is_file():
        kind, suite = _kind_from_sections(directory)
        suite = experiment.suite if kind == experiment.kind and suite is None else suite
    else:
        return None
    if (kind, suite) != (experiment.kind, experiment.suite):
        raise InputError(f"{directory} holds {f'suite {suite}' if suite else f'{kind} results'}, not "
                         f"{experiment.suite or experiment.kind}; use another --out directory")
    return old


def start_experiment(experiment: Experiment, out: Path, run: RunOptions, command: list[str] | None) -> Outcome | None:
    """Run (or resume) ``experiment`` into ``out`` and record it in ``out/experiment.json``; None on a
    torchrun rank other than 0, which writes nothing.

    Raises:
        InputError: ``out`` holds another experiment's results, or what the experiment refuses.
    """
    from oodscope.training import distributed  # torch: only when running

    main = distributed.is_main()
    started = now()
    old = check_directory(out, experiment) if main else None
    try:
        outcome = experiment.run(out, run, command)
    finally:
        if main and out.is_dir() and ((out / "results.jsonl").is_file() or any(out.glob("*/results.jsonl"))):
            write_record(out, experiment, command, started, old)
    return outcome if main else None


def rows_of(directory: Path) -> list[dict[str, Any]]:
    """The first row of every cell in ``DIR/results.jsonl`` (none when it has no log)."""
    path = Path(directory) / "results.jsonl"
    return list(first_per_cell(ResultsLog(path).rows()).values()) if path.is_file() else []


def read_record(directory: Path) -> dict[str, Any] | None:
    """The contents of ``DIR/experiment.json`` (None when absent, or when it holds sections only and
    no experiment: no ``kind``).

    Raises:
        DataError: the file is not an experiment record, or of a newer schema.
    """
    record = read_record_file(directory)
    if record is None or "kind" not in record:
        return None
    if not isinstance(record["kind"], str):
        raise DataError(f"{Path(directory) / RECORD}: not an experiment record (kind {record['kind']!r})")
    return record


def _kind_from_sections(directory: Path) -> tuple[str, str | None]:
    """The experiment of a directory whose record names none, from the sections it holds (in
    ``experiment.json``, or in their own files in a directory written before): a paper suite's, a
    measurement suite's plan, one grid per (data set, outlier source) in ``DATASET--SOURCE/``
    (stress), else the grid's command (``--suite NAME``: a classifier or calibration suite)."""
    for name in ("paper_suite", "measured"):
        try:
            found = locate_section(directory, name)
        except DataError:  # unreadable: recognised by the file alone
            found = next(((f, {}) for f in SECTIONS[name] if (directory / f).exists()), None)
        if found is None:
            continue
        file, data = found
        suite = data.get("suite") if isinstance(data.get("suite"), str) else None
        if name == "paper_suite":
            return "paper-suite", suite
        kind = suite if file == RECORD and suite else Path(file).stem  # an older file is named after its suite
        return kind, kind
    if not (directory / "results.jsonl").is_file() and any(
            d.is_dir() and "--" in d.name and (d / "results.jsonl").is_file() for d in directory.iterdir()):
        return "stress", "stress"
    try:
        command = (read_section(directory, "grid") or {}).get("command") or []
    except DataError:
        command = []
    if isinstance(command, list) and "--suite" in command[:-1]:  # a classifier or calibration suite: a grid, a table
        return "family-suite", str(command[command.index("--suite") + 1])
    return "grid", None


def experiment_of(directory: str | Path) -> tuple[type[Experiment], str | None]:
    """The experiment whose results ``directory`` holds, and its ``--suite`` name.

    Raises:
        InputError: the directory holds no results of any experiment.
        DataError: its record is unreadable or names an experiment this oodscope does not have.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory")
    record = read_record(directory)
    if record is not None:
        kind, suite = record["kind"], record.get("suite")
    elif (directory / "results.jsonl").is_file() or any(directory.iterdir()):
        kind, suite = _kind_from_sections(directory)
    else:
        raise InputError(f"{directory}: no results to draw from")
    known = experiments()
    if kind not in known:
        raise DataError(f"{directory}: results of experiment {kind!r}, which this oodscope does not have; "
                        f"known: {', '.join(sorted(known))}")
    return known[kind], suite
