"""The stress grid (:mod:`oodscope.bench.sanity.stress`): does ``layers`` hold whatever the few
known outliers are? One grid per (data set, outlier source) in ``OUT/DATASET--SOURCE/`` and one
table of the paper's method against its own network f."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.bench.config import RunOptions
from oodscope.bench.experiment import Experiment, Outcome, ReportTables, read_record, register_experiment
from oodscope.bench.options import parse_budgets, parse_int_list, parse_methods, parse_settings
from oodscope.bench.sanity.stress import StressPlan, grid_rows, render, run_stress, stress_table
from oodscope.errors import InputError


@register_experiment
class Stress(Experiment):
    kind = "stress"
    suites = ("stress",)
    takes = frozenset({"dataset", "classes", "n_oe", "seeds", "methods", "preset", "settings", "protocol"})
    refusal = "it runs the one-class protocol over its own outlier sources"
    help = ("stress: geom and layers on MNIST and one-class EMNIST letters (--dataset picks one) with 16 outliers "
            "from each source (the other data set, digits-28, noise, blobs, strokes)")

    def plan(self) -> StressPlan:
        opts = self.options
        if opts["protocol"] not in (None, "one-class"):
            raise InputError(f"--suite stress does not take --protocol {opts['protocol']} ({self.refusal})")
        n_oe = parse_budgets(opts["n_oe"] or "16", "--n-oe")
        if len(n_oe) != 1 or not isinstance(n_oe[0], int):
            raise InputError("--suite stress takes one number of outliers (--n-oe N)")
        return StressPlan(preset=opts["preset"], n_oe=n_oe[0],
                          **({} if opts["dataset"] is None else {"datasets": [opts["dataset"]]}),
                          **({} if opts["classes"] is None else {"classes": parse_int_list(opts["classes"], "--classes")}),
                          **({} if opts["seeds"] is None else {"seeds": parse_int_list(opts["seeds"], "--seeds")}),
                          **({} if opts["methods"] is None else {"methods": parse_methods(opts["methods"])}))

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        plan = self.plan()
        table = run_stress(plan, out, run, command, overrides=parse_settings(self.options["settings"], plan.methods))
        return Outcome(table.read_text(encoding="utf-8"), [table])

    @classmethod
    def _methods(cls, directory: Path, rows: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
        record = read_record(directory) or {}
        given = (record.get("options") or {}).get("methods")
        if given:
            return parse_methods(given)
        return list(dict.fromkeys(r["method"] for group in rows.values() for r in group))

    @classmethod
    def rebuild(cls, directory: Path, rows: list[dict[str, Any]], data_root: Any = None) -> Outcome:
        grids = grid_rows(directory)
        text = render(grids, cls._methods(directory, grids))
        return Outcome(text, [write_text_atomic(directory / "table.md", text)])

    @classmethod
    def report(cls, directory: Path, rows: list[dict[str, Any]]) -> ReportTables | None:
        grids = grid_rows(directory)
        table = stress_table(grids, cls._methods(directory, grids))
        return ReportTables("Stress grid: layers against its own f (geom) for each outlier source", [table.caption],
                            [("Per data set and outlier source", table)])
