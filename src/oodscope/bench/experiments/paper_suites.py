"""The paper's experiments (Okamoto, Suzuki & Matsuo 2021): Tables 2 and 3, Figs. 4 and 5, each a
fixed list of one-class cells (:mod:`oodscope.bench.paper.suites`) with its own tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodscope.bench.config import BenchConfig, RunOptions
from oodscope.bench.experiment import Experiment, Outcome, ReportTables, register_experiment
from oodscope.bench.experiments.grid import SUITE_OPTIONS
from oodscope.bench.paper.files import load_spec, read_suite, rebuild_tables
from oodscope.bench.paper.stats import with_unsupervised
from oodscope.bench.paper.suites import SUITES, make_spec, n_classes_of
from oodscope.bench.paper.tables import sections
from oodscope.errors import DataError, InputError
from oodscope.protocols import OneClass


@register_experiment
class PaperSuite(Experiment):
    kind = "paper-suite"
    suites = tuple(SUITES)
    takes = SUITE_OPTIONS
    refusal = "the suite sets its own variants"
    torchrun = True
    figures = "always"
    help = "table2, table3, fig4, fig5: the paper's experiments (one-class; table.md, table.csv, figures)"

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        from oodscope.bench.options import GRID_DEFAULTS, parse_budgets, parse_int_list, parse_methods, parse_settings
        from oodscope.bench.paper.run import run_suite
        from oodscope.detectors import registry
        from oodscope.training import distributed

        opts, suite = self.options, str(self.suite)
        if opts["protocol"] != OneClass.name:
            raise InputError(f"--suite {suite} is a one-class experiment; it cannot run under --protocol {opts['protocol']}")
        dataset = opts["dataset"] or GRID_DEFAULTS["dataset"]
        spec = make_spec(
            suite, dataset, opts["preset"], n_classes_of(dataset, run.data_root, run.download),
            oe_dataset=opts["oe_dataset"],
            classes=None if opts["classes"] is None else parse_int_list(opts["classes"], "--classes"),
            seeds=None if opts["seeds"] is None else parse_int_list(opts["seeds"], "--seeds"),
            n_oe=None if opts["n_oe"] is None else parse_budgets(opts["n_oe"], "--n-oe"),
            oe_classes=None if opts["oe_classes"] is None else parse_budgets(opts["oe_classes"], "--oe-classes"),
            methods=None if opts["methods"] is None else parse_methods(opts["methods"]),
            unsupervised=[m for m, cls in registry().items() if not cls.requires.outliers],
        )
        config = BenchConfig(out=out, overrides=parse_settings(opts["settings"], spec.methods), run=run, command=command)
        run_suite(spec, config)
        if not distributed.is_main():  # torchrun: rank 0 draws and reports
            return Outcome()
        return Outcome((config.directory / "table.md").read_text(encoding="utf-8"))

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        paths = rebuild_tables(directory)
        return Outcome((directory / "table.md").read_text(encoding="utf-8"), paths)

    @classmethod
    def report(cls, directory: Path, rows: list[dict[str, Any]]) -> ReportTables | None:
        try:
            spec = with_unsupervised(load_spec(directory), rows)
            spec.definition  # noqa: B018 - an unknown suite name raises KeyError
        except (InputError, DataError, TypeError, KeyError, ValueError):
            return None
        title, notes, tables = sections(spec, rows)
        return ReportTables(title, notes, tables)

    @classmethod
    def identity(cls, directory: Path) -> dict[str, Any]:
        info = read_suite(directory) or {}
        return {k: info.get(k) for k in ("suite", "dataset", "preset")} if info else {}
