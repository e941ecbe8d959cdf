"""``oodscope bench``: a resumable one-class benchmark grid, or one of the paper's suites."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from oodscope.bench import BenchConfig, run_bench
from oodscope.bench.presets import PRESETS
from oodscope.bench.suite_run import read_suite, run_suite
from oodscope.bench.suites import SUITES, make_spec, n_classes_of
from oodscope.cli.common import apply_threads, device_option, set_option, threads_option
from oodscope.cli.parsing import parse_budgets, parse_int_list, parse_methods, parse_settings, parse_taps
from oodscope.errors import InputError

# defaults of a plain grid (without --suite); a suite has its own
GRID_DEFAULTS = {"methods": "geom,layers", "oe_dataset": "emnist-letters", "n_oe": "16", "oe_classes": "all", "seeds": "0"}


@click.command()
@click.option("--suite", type=click.Choice(sorted(SUITES)), default=None,
              help="Run one of the paper's experiments (table2, table3, fig4, fig5) instead of a plain grid; "
                   "writes table.md, table.csv, suite.json and figures to OUT.")
@click.option("--tables-only", is_flag=True, help="Rebuild OUT's tables and figures from results.jsonl, without training.")
@click.option("--dataset", default="mnist", show_default=True, help="In-distribution data set.")
@click.option("--methods", default=None, help="Comma-separated detector methods [grid: geom,layers; suite: a subset of its methods].")
@click.option("--classes", default=None, help="In-distribution classes, e.g. 0-9, 0,8 or 2 (default: all).")
@click.option("--oe", "oe_dataset", default=None,
              help="Data set of the known outliers (its train split) [grid: emnist-letters; suite: emnist-letters "
                   "for mnist, cifar100 for cifar10].")
@click.option("--n-oe", default=None, help="Number(s) of known outliers, comma-separated; 'all' = the whole set [grid: 16].")
@click.option("--oe-classes", default=None, help="Number(s) of outlier classes to draw from, comma-separated, or 'all' [grid: all].")
@click.option("--seeds", default=None, help="Seeds, e.g. 0 or 0,1,2 or 0-4 [grid: 0].")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cpu", show_default=True, help="Detector settings preset.")
@device_option()
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Data root (default: $OODSCOPE_DATA or ~/.cache/oodscope).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory; rerun with the same one to resume.")
@click.option("--taps", "taps", multiple=True, help="Taps variant for methods with taps, e.g. z4 or z1+z2+z3+z4 (repeatable; one cell each).")
@set_option()
@click.option("--download/--no-download", default=True, show_default=True, help="Download missing data files.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
@threads_option()
def bench(suite: str | None, tables_only: bool, dataset: str, methods: str | None, classes: str | None,
          oe_dataset: str | None, n_oe: str | None, oe_classes: str | None, seeds: str | None, preset: str,
          device: str | None, data_root: str | None, out: str, taps: tuple[str, ...], settings: tuple[str, ...],
          download: bool, progress: bool, threads: int | None) -> None:
    """Run or resume a one-class benchmark grid, or a suite (--suite).

    Results go to OUT/results.jsonl (one row per finished cell), OUT/summary.md,
    OUT/run.json and OUT/scores/ (each cell's test scores). Rerunning with the same OUT
    skips finished cells. A suite also writes OUT/table.md, OUT/table.csv, OUT/suite.json
    and PNG figures; --tables-only redraws them from what is finished.
    """
    apply_threads(threads)
    command = ["oodscope", *sys.argv[1:]] if sys.argv else None
    if tables_only:
        _tables_only(Path(out), suite, data_root)
        return
    if suite is not None:
        _run_suite(suite, dataset, methods, classes, oe_dataset, n_oe, oe_classes, seeds, preset, device,
                   data_root, out, taps, settings, download, progress, command)
        return
    config = BenchConfig(
        out=out,
        dataset=dataset,
        methods=parse_methods(methods or GRID_DEFAULTS["methods"]),
        classes=None if classes is None else parse_int_list(classes, "--classes"),
        oe_dataset=oe_dataset or GRID_DEFAULTS["oe_dataset"],
        n_oe=parse_budgets(n_oe or GRID_DEFAULTS["n_oe"], "--n-oe"),
        oe_classes=parse_budgets(oe_classes or GRID_DEFAULTS["oe_classes"], "--oe-classes"),
        seeds=parse_int_list(seeds or GRID_DEFAULTS["seeds"], "--seeds"),
        preset=preset,
        device=device,
        data_root=data_root,
        download=download,
        taps=parse_taps(taps),
        overrides=parse_settings(settings),
        progress=progress,
        command=command,
    )
    run_bench(config)
    click.echo((config.directory / "summary.md").read_text(encoding="utf-8"))
    click.echo(f"results: {config.directory / 'results.jsonl'}\nsummary: {config.directory / 'summary.md'}")


def _run_suite(suite: str, dataset: str, methods: str | None, classes: str | None, oe_dataset: str | None,
               n_oe: str | None, oe_classes: str | None, seeds: str | None, preset: str, device: str | None,
               data_root: str | None, out: str, taps: tuple[str, ...], settings: tuple[str, ...], download: bool,
               progress: bool, command: list[str] | None) -> None:
    """Resolve the suite with the given overrides, run it, draw its figures, print its table."""
    from oodscope.figures import write_figures  # matplotlib only when a suite needs it

    if taps:
        raise InputError("--taps cannot be combined with --suite (the suite sets its own taps)")
    spec = make_spec(
        suite, dataset, preset, n_classes_of(dataset, data_root, download),
        oe_dataset=oe_dataset,
        classes=None if classes is None else parse_int_list(classes, "--classes"),
        seeds=None if seeds is None else parse_int_list(seeds, "--seeds"),
        n_oe=None if n_oe is None else parse_budgets(n_oe, "--n-oe"),
        oe_classes=None if oe_classes is None else parse_budgets(oe_classes, "--oe-classes"),
        methods=None if methods is None else parse_methods(methods),
    )
    config = BenchConfig(out=out, device=device, data_root=data_root, download=download,
                         overrides=parse_settings(settings), progress=progress, command=command)
    run_suite(spec, config)
    paths = write_figures(config.directory)
    click.echo((config.directory / "table.md").read_text(encoding="utf-8"))
    _echo_paths(config.directory, paths)


def _tables_only(directory: Path, suite: str | None, data_root: str | None) -> None:
    """Redraw a suite's tables and figures (or a plain grid's figures) from its results."""
    from oodscope.figures import rebuild_outputs, write_figures

    info = read_suite(directory)
    if info is None:
        if suite is not None:
            raise InputError(f"{directory}: no suite.json; run the suite there first")
        if not (directory / "results.jsonl").is_file():
            raise InputError(f"{directory}: no results.jsonl to draw from")
        _echo_paths(directory, write_figures(directory, data_root))
        return
    if suite is not None and info.get("suite") != suite:
        raise InputError(f"{directory} holds suite {info.get('suite')}, not {suite}")
    paths = rebuild_outputs(directory, data_root)
    click.echo((directory / "table.md").read_text(encoding="utf-8"))
    _echo_paths(directory, paths)


def _echo_paths(directory: Path, paths: list[Path]) -> None:
    click.echo(f"results: {directory / 'results.jsonl'}")
    for p in paths:
        click.echo(f"wrote: {p}")
