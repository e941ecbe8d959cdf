"""``oodscope bench``: run, resume or redraw one experiment (a plain grid, or ``--suite NAME``).

The command parses; the experiment (:mod:`oodscope.bench.experiment`) decides: it refuses the
options it does not take, runs its cells through the one run loop, and rebuilds its tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from oodscope.bench.config import RunOptions
from oodscope.bench.experiment import experiment_of, experiments, for_suite, rows_of, start_experiment
from oodscope.cli.bench_options import conformal_options, grid_options, protocol_options, run_options
from oodscope.cli.common import apply_threads, model_options
from oodscope.errors import InputError
from oodscope.training import distributed

SUITE_HELP = "; ".join(cls.help for cls in experiments().values() if cls.suites) + "."


@click.command()
@click.option("--suite", default=None, metavar="NAME",
              help="Run an experiment instead of a plain grid: " + SUITE_HELP)
@click.option("--tables-only", is_flag=True, help="Rebuild OUT's tables and figures from its results, without training.")
@protocol_options
@grid_options
@conformal_options
@model_options("every detector that takes one reads it instead of training oodscope's own network; the others are left out.")
@run_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory; rerun with the same one to resume.")
def bench(suite: str | None, tables_only: bool, out: str, **opts: Any) -> None:
    """Run or resume a benchmark grid, or an experiment (--suite).

    Results go to OUT/results.jsonl (one row per finished cell), OUT/summary.md,
    OUT/experiment.json and OUT/scores/ (each cell's test scores). Rerunning with the same OUT
    skips finished cells. A suite also writes its tables (OUT/table.md) and PNG figures;
    --tables-only redraws them from what is finished.
    """
    apply_threads(opts["threads"])
    context = click.get_current_context()
    given = {k for k in opts if context.get_parameter_source(k) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)}
    if tables_only:
        _redraw(Path(out), suite, given, opts["data_root"])
        return
    cls = for_suite(suite)
    cls.check_options(suite, given, opts["executor"])
    if distributed.active() and not cls.torchrun:
        raise InputError(f"under torchrun, bench runs {', '.join(n for c in experiments().values() if c.torchrun for n in (c.suites or ('a plain grid',)))}")
    command = ["oodscope", *sys.argv[1:]] if sys.argv else None
    experiment = cls(suite, {**opts})
    outcome = start_experiment(experiment, Path(out), RunOptions.from_options(opts), command)
    if outcome is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if cls.figures == "always":
        from oodscope.figures import write_figures  # matplotlib only when an experiment draws

        outcome.paths += write_figures(Path(out), opts["data_root"])
    _echo(Path(out), outcome.text, outcome.paths)


def _redraw(directory: Path, suite: str | None, given: set[str], data_root: str | None) -> None:
    """Rebuild the directory's tables and figures from its results, as its experiment draws them."""
    if distributed.active():
        raise InputError("under torchrun, bench runs experiments; --tables-only runs in one process")
    stray = sorted(given - {"data_root", "threads", "progress"})
    if stray:
        raise InputError(f"--tables-only draws from what the directory holds; it does not take --{stray[0].replace('_', '-')}")
    cls, name = experiment_of(directory)
    if suite is not None and suite != name:
        raise InputError(f"{directory} holds {name or cls.kind} results, not --suite {suite}")
    outcome = cls.rebuild(directory, rows_of(directory), data_root)
    if cls.figures != "none":
        from oodscope.figures import write_figures

        outcome.paths += write_figures(directory, data_root)
    _echo(directory, outcome.text, outcome.paths)


def _echo(directory: Path, text: str | None, paths: list[Path]) -> None:
    if text:
        click.echo(text)
    if (directory / "results.jsonl").is_file():  # an experiment that reads other directories' scores keeps none
        click.echo(f"results: {directory / 'results.jsonl'}")
    for p in paths:
        click.echo(f"wrote: {p}")
