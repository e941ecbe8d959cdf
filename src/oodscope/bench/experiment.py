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
``options``, the command and its history). Directories written before that file existed are
recognised by :func:`experiment_of` from their older record files — the one place that knows
them.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from oodscope.atomic import write_json_atomic
from oodscope.bench.config import RunOptions
from oodscope.errors import DataError, InputError
from oodscope.results import ResultsLog, first_per_cell
from oodscope.results.tables import Table

RECORD = "experiment.json"
RECORD_SCHEMA = 1
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
        """Record files of its own (beside ``experiment.json``) that its tables need, carried by a merge."""
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
    """Write ``DIR/experiment.json`` atomically; the command of the earlier record ``old`` (read by
    :func:`check_directory` before the run) moves to ``history``."""
    history = [] if old is None else [*old.get("history", []), {k: old.get(k) for k in ("command", "started")}]
    write_json_atomic(directory / RECORD, {
        "kind": experiment.kind, "suite": experiment.suite, "schema": RECORD_SCHEMA,
        "options": {k: v for k, v in sorted(experiment.options.items()) if k in experiment.takes and v not in (None, ())},
        "command": command or sys.argv, "started": started or now(), "history": history,
    })


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_directory(directory: Path, experiment: Experiment) -> dict[str, Any] | None:
    """The directory's experiment record (None when it has none); InputError when it holds the results
    of another experiment (recognised from the older record files when it has no experiment.json)."""
    old = read_record(directory)
    if old is not None:
        kind, suite = old.get("kind"), old.get("suite")
    elif directory.is_dir() and (directory / "results.jsonl").is_file():
        kind, suite = _legacy_kind(directory)
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
    """The contents of ``DIR/experiment.json`` (None when absent).

    Raises:
        DataError: the file is not an experiment record, or of a newer schema.
    """
    path = Path(directory) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        kind, schema = record["kind"], int(record["schema"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not an experiment record ({e})") from None
    if schema > RECORD_SCHEMA:
        raise DataError(f"{path}: schema {schema} is newer than this oodscope reads ({RECORD_SCHEMA}); upgrade oodscope")
    if not isinstance(kind, str):
        raise DataError(f"{path}: not an experiment record (kind {kind!r})")
    return record


# Directories written before experiment.json: the record file each kind wrote, in the order they
# are tried (a paper suite's directory also holds run.json). The one place that knows them.
LEGACY_RECORDS = (("suite.json", "paper-suite"), ("robustness.json", "robustness"),
                  ("verification.json", "verification"))
# every record file a directory may hold, newest first: what a merge copies and whose commands it keeps
RECORD_FILES = (RECORD, *(name for name, _ in LEGACY_RECORDS), "run.json")


def _legacy_kind(directory: Path) -> tuple[str, str | None]:
    for name, kind in LEGACY_RECORDS:
        if (directory / name).is_file():
            try:
                suite = json.loads((directory / name).read_text(encoding="utf-8")).get("suite")
            except (OSError, ValueError, AttributeError):
                suite = None
            return kind, suite if isinstance(suite, str) else (None if kind == "paper-suite" else kind)
    if not (directory / "results.jsonl").is_file() and any(
            d.is_dir() and "--" in d.name and (d / "results.jsonl").is_file() for d in directory.iterdir()):
        return "stress", "stress"  # one grid per (data set, outlier source) in DATASET--SOURCE/
    try:
        command = json.loads((directory / "run.json").read_text(encoding="utf-8")).get("command") or []
    except (OSError, ValueError, AttributeError):
        command = []
    if "--suite" in command[:-1]:  # the classifier or calibration suite: a grid with a table
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
        kind, suite = _legacy_kind(directory)
    else:
        raise InputError(f"{directory}: no results to draw from")
    known = experiments()
    if kind not in known:
        raise DataError(f"{directory}: results of experiment {kind!r}, which this oodscope does not have; "
                        f"known: {', '.join(sorted(known))}")
    return known[kind], suite
