"""Suites run as a plain grid under a multi-class protocol: the ``classifier`` suite (every
classifier-based detector) and the ``calibration`` suite (the classifier before and after
temperature scaling, MC dropout and a deep ensemble with each uncertainty score); their table is
the summary's (:data:`oodscope.bench.paper.suites.GRID_SUITES`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.bench.config import BenchConfig, RunOptions
from oodscope.bench.experiment import Experiment, Outcome, register_experiment
from oodscope.bench.experiments.grid import MODEL_OPTIONS, SUITE_OPTIONS
from oodscope.bench.paper.suites import GRID_SUITES
from oodscope.bench.user_model import BenchModel
from oodscope.errors import InputError
from oodscope.progress import message
from oodscope.protocols import OneClass


def _reads_user_models(cls: type) -> bool:
    up = cls.requires.upstream
    return up is not None and (up.takes_user_models or cls.requires.user_models)


@register_experiment
class FamilySuite(Experiment):
    kind = "family-suite"
    suites = tuple(GRID_SUITES)
    takes = SUITE_OPTIONS | MODEL_OPTIONS  # its detectors read a classifier: yours with --model
    refusal = "the suite sets its own variants"
    figures = "always"
    help = ("classifier, calibration: a family of classifier-based detectors on a multi-class benchmark "
            "(--protocol mnist-vs-letters or split-mnist; seeds 0-2)")

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        from oodscope.bench.options import build_protocol, parse_int_list, parse_methods, parse_settings
        from oodscope.bench.runner import run_bench
        from oodscope.detectors import registry

        opts, suite = self.options, str(self.suite)
        spec = GRID_SUITES[suite]
        if opts["protocol"] == OneClass.name:
            raise InputError(f"--suite {suite} runs on a multi-class benchmark: --protocol mnist-vs-letters or split-mnist")
        protocol = build_protocol(opts)
        family = spec.methods or [m for m, cls in registry().items() if cls.family == spec.family and cls.unavailable() is None]
        methods = family if opts["methods"] is None else parse_methods(opts["methods"])
        stray = [m for m in methods if m not in family]
        if stray:
            raise InputError(f"--suite {suite} runs {', '.join(family)}; not {', '.join(stray)}")
        model = BenchModel.from_options(opts)
        if model is not None:  # a model of yours: the detectors that read one; the others train their own
            own = [m for m in methods if not _reads_user_models(registry()[m])]
            methods = [m for m in methods if m not in own]
            if own:
                message(f"left out (they train their own network, not --model): {', '.join(own)}")
        try:
            protocol.outlier_source()
        except InputError as e:
            skipped = [m for m in methods if registry()[m].requires.outliers]
            methods = [m for m in methods if m not in skipped]
            if skipped:
                message(f"left out (they need known outliers): {', '.join(skipped)}: {e}")
        config = BenchConfig(
            out=out, protocol=protocol, methods=methods,
            seeds=spec.seeds if opts["seeds"] is None else parse_int_list(opts["seeds"], "--seeds"),
            preset=opts["preset"], variants=spec.variants or None, overrides=parse_settings(opts["settings"], methods),
            run=run, command=command, keep=spec.keep, model=model,
        )
        run_bench(config)
        return self.rebuild(config.directory, [])

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        summary = (directory / "summary.md").read_text(encoding="utf-8")
        return Outcome(summary, [write_text_atomic(directory / "table.md", summary)])
