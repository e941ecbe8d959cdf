"""The ``conformal`` suite (:mod:`oodscope.bench.measured.conformal`): the measured guarantees of
conformal p-values on the saved test scores of other benchmark directories (``--from DIR``,
repeatable), over ``--splits`` random calibration/test splits per cell; nothing is trained. Its
parts are ``OUT/parts/*.json`` (a rerun skips the finished ones), its plan the ``measured`` section
of ``experiment.json``, its tables ``table.md`` and ``csv/``, its figures ``qq.png``, ``fdr.png``
and ``online.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodscope.bench.config import RunOptions
from oodscope.bench.experiment import Experiment, Outcome, ReportTables, read_record, register_experiment, write_record

DEFAULT_SPLITS = 1000


@register_experiment
class Conformal(Experiment):
    kind = "conformal"
    suites = ("conformal",)
    takes = frozenset({"from", "splits", "methods"})
    refusal = "it reads the saved scores of the directories given with --from and trains nothing"
    executors = ("local",)
    one_setting_per_method = False
    help = ("conformal: type-I error, Benjamini-Hochberg FDR and online FDR of conformal p-values over --splits random "
            "calibration/test splits (default 1000) of the saved scores of --from DIR (repeatable; --methods filters)")

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        from oodscope.bench.measured.conformal import ConformalPlan, check, run_conformal
        from oodscope.bench.options import parse_methods

        opts = self.options
        plan = ConformalPlan(sources=[str(Path(s).resolve()) for s in opts.get("from") or ()],
                             methods=None if opts.get("methods") is None else parse_methods(opts["methods"]),
                             splits=DEFAULT_SPLITS if opts.get("splits") is None else int(opts["splits"]))
        check(plan, out)  # refused before anything is written
        old = read_record(out) if out.is_dir() else None
        out.mkdir(parents=True, exist_ok=True)
        write_record(out, self, command, old=old)  # no results.jsonl: the record is written here, not after the run
        paths = run_conformal(plan, out, run.progress, command, run.to_json())
        return Outcome(paths[0].read_text(encoding="utf-8"), paths)

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        from oodscope.bench.measured.conformal_tables import write_outputs

        paths = write_outputs(directory)
        return Outcome(paths[0].read_text(encoding="utf-8"), paths)

    @classmethod
    def report(cls, directory: Path, rows: list[dict[str, Any]]) -> ReportTables | None:
        from oodscope.bench.measured.conformal_tables import tables

        found, notes, _ = tables(directory)
        return ReportTables("Conformal p-values: measured guarantees",
                            ["✓ target met in the mean, ≈ within two standard errors of it, ✗ missed.", *notes], found)

    @classmethod
    def own_records(cls, suite: str | None) -> tuple[str, ...]:
        return ("measured",)
