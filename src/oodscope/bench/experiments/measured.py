"""The measurement suites, each with its own plan of models and measurements: ``robustness``
(:mod:`oodscope.bench.measured.robustness`) and ``verification``
(:mod:`oodscope.bench.measured.verification`), on a multi-class benchmark; one row per
measurement, their own tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from oodscope.bench.config import RunOptions
from oodscope.bench.experiment import Experiment, Outcome, ReportTables, register_experiment
from oodscope.bench.measured.tables import SUITE_TABLES, write_tables
from oodscope.protocols import OneClass

DEFAULT_BENCHMARK = "mnist-vs-letters"


class MeasuredSuite(Experiment):
    """What the two measurement suites share: the benchmark, the seeds, the tables."""

    takes: ClassVar[frozenset[str]] = frozenset({"protocol", "seeds", "preset"})
    refusal = "the suite sets its own models and detectors"
    executors = ("local",)
    one_setting_per_method = False  # a detector is measured on several classifiers (standard, adversarially trained)

    def benchmark_and_seeds(self) -> tuple[str, list[int]]:
        from oodscope.bench.options import parse_int_list

        opts = self.options
        benchmark = DEFAULT_BENCHMARK if opts["protocol"] == OneClass.name else opts["protocol"]
        return benchmark, [0] if opts["seeds"] is None else parse_int_list(opts["seeds"], "--seeds")

    def measure(self, benchmark: str, seeds: list[int], out: Path, run: RunOptions, command: list[str] | None) -> None:
        raise NotImplementedError

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        benchmark, seeds = self.benchmark_and_seeds()
        self.measure(benchmark, seeds, out, run, command)
        return Outcome((out / "table.md").read_text(encoding="utf-8"), [out / "table.md", out / "summary.md"])

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        return Outcome(None, [write_tables(directory, rows, cls.suites[0])])

    @classmethod
    def own_records(cls, suite: str | None) -> tuple[str, ...]:
        return ("measured",)  # the plan

    @classmethod
    def report(cls, directory: Path, rows: list[dict[str, Any]]) -> ReportTables | None:
        tables = SUITE_TABLES[cls.suites[0]][1](rows) if rows else []
        return ReportTables(tables=[(t.caption, replace(t, caption="")) for t in tables])


@register_experiment
class Robustness(MeasuredSuite):
    kind = "robustness"
    suites = ("robustness",)
    help = ("robustness: standard and adversarially trained classifiers under FGSM / PGD, transfer, detectors "
            "under attack (default --protocol mnist-vs-letters)")

    def measure(self, benchmark: str, seeds: list[int], out: Path, run: RunOptions, command: list[str] | None) -> None:
        from oodscope.bench.measured.robustness import RobustnessPlan, run_robustness

        run_robustness(RobustnessPlan.for_preset(self.options["preset"], benchmark=benchmark, seeds=seeds), out, run, command)


@register_experiment
class Verification(MeasuredSuite):
    kind = "verification"
    suites = ("verification",)
    takes = MeasuredSuite.takes | {"methods"}
    help = ("verification: certified accuracy (interval and DeepPoly bounds) of standard, PGD- and IBP-trained "
            "classifiers, rotation certificates, neuron coverage (--methods picks the models)")

    def measure(self, benchmark: str, seeds: list[int], out: Path, run: RunOptions, command: list[str] | None) -> None:
        from oodscope.bench.measured.verification import VerificationPlan, run_verification

        methods = self.options["methods"]
        models = {} if methods is None else {"models": [m.strip() for m in methods.split(",") if m.strip()]}
        run_verification(VerificationPlan.for_preset(self.options["preset"], benchmark=benchmark, seeds=seeds, **models),
                         out, run, command)
