"""``oodscope bench``: a resumable benchmark grid under a protocol, or one of the paper's suites."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from oodscope.atomic import write_text_atomic
from oodscope.bench import BenchConfig, RunOptions, run_bench
from oodscope.bench.paper.methods import DEFAULT_GRID
from oodscope.bench.paper.files import read_suite
from oodscope.bench.paper.suites import GRID_SUITES, SUITES, make_spec, n_classes_of
from oodscope.cli.common import apply_threads, device_option, set_option, threads_option
from oodscope.cli.parsing import parse_budgets, parse_int_list, parse_methods, parse_settings, parse_variants
from oodscope.detectors import registry
from oodscope.training import distributed
from oodscope.detectors.base import PRESET_NAMES
from oodscope.errors import InputError
from oodscope.protocols import OE_ALL, OE_NEXT, OneClass, Protocol, make_protocol, protocol_names

F = Callable[..., Any]
# defaults of a plain grid (without --suite); a suite has its own
GRID_DEFAULTS = {"methods": ",".join(DEFAULT_GRID), "dataset": "mnist", "oe_dataset": "emnist-letters", "n_oe": "16",
                 "oe_classes": "all", "seeds": "0"}


def _stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f
    return apply


protocol_options = _stack(
    click.option("--protocol", type=click.Choice(protocol_names()), default=OneClass.name, show_default=True,
                 help="one-class: each class of --dataset in turn; mnist-vs-letters, split-mnist: multi-class, "
                      "a classifier of the in-distribution classes."),
    click.option("--dataset", default=None, help="In-distribution data set of the one-class protocol [grid: mnist]."),
    click.option("--classes", default=None, help="In-distribution classes (one-class), e.g. 0-9, 0,8 or 2 (default: all)."),
    click.option("--oe", "oe_dataset", default=None,
                 help="Data set of the known outliers (its train split) [one-class: emnist-letters; suite: emnist-letters "
                      "for mnist, cifar100 for cifar10; split-mnist: emnist-letters]."),
    click.option("--n-oe", default=None,
                 help="Number(s) of known outliers, comma-separated; 'all' = the whole set; a fraction such as 0.01 "
                      "(one-class) = that ratio gamma_l of the training set (Deep SAD's protocol) [16]."),
    click.option("--oe-classes", default=None,
                 help="Number(s) of outlier classes to draw from (one-class), or 'all'; 'next' = the class after the "
                      "in-distribution one, of the same data set (--oe DATASET) [all]."),
)

grid_options = _stack(
    click.option("--methods", default=None,
                 help=f"Comma-separated detector methods [grid: {','.join(DEFAULT_GRID)}; suite: a subset of its methods]. "
                      "Known: " + ", ".join(registry()) + "."),
    click.option("--seeds", default=None, help="Seeds, e.g. 0 or 0,1,2 or 0-4 [grid: 0]."),
    click.option("--preset", type=click.Choice(PRESET_NAMES), default="cpu", show_default=True, help="Detector settings preset."),
    set_option(),
    click.option("--variant", "variants", multiple=True, metavar="KEY=VALUE[,KEY=VALUE]",
                 help="A variant of the settings, one cell each for the methods having them (repeatable), "
                      "e.g. --variant taps=z4 --variant taps=z1+z2+z3+z4."),
)

run_options = _stack(
    device_option(),
    click.option("--data-root", type=click.Path(file_okay=False), default=None,
                 help="Data root (default: $OODSCOPE_DATA or ~/.cache/oodscope)."),
    click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
                 help="Directory of trained shared networks (GEOM's f, classifiers), reused across runs "
                      "(default: $OODSCOPE_CACHE or ~/.cache/oodscope/networks)."),
    click.option("--disk-cache/--no-disk-cache", default=True, show_default=True,
                 help="Keep trained shared networks on disk (--no-disk-cache: only within this run)."),
    click.option("--download/--no-download", default=True, show_default=True, help="Download missing data files."),
    click.option("--progress/--no-progress", default=True, show_default=True,
                 help="Show progress on stderr (bars on a terminal, a few lines in a log)."),
    threads_option(),
    click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="Where cells run: local = this process; ray = as Ray tasks (pip install 'oodscope[ray]'), "
                      "results still written by this process only."),
    click.option("--address", default=None,
                 help="Ray cluster to join (auto, or HOST:PORT); default: start a local Ray with this machine's CPUs."),
    click.option("--cpus-per-cell", type=click.IntRange(min=1), default=1, show_default=True,
                 help="CPUs each Ray task asks for (and torch's threads in it); GPUs follow the device / preset."),
    click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                 help="With --executor ray: how often a cell whose worker died is run again."),
)


def build_protocol(opts: dict[str, Any]) -> Protocol:
    """The protocol of a plain grid from the protocol options.

    Raises:
        InputError: an option that does not apply to the protocol, or a bad value.
    """
    name = opts["protocol"]
    budgets = lambda key, flag: None if opts[key] is None else tuple(parse_budgets(opts[key], flag))  # noqa: E731
    if name != OneClass.name:
        return make_protocol(name, dataset=opts["dataset"], classes=opts["classes"], oe_dataset=opts["oe_dataset"],
                             n_oe=budgets("n_oe", "--n-oe"), oe_classes=opts["oe_classes"])
    return make_protocol(
        name,
        dataset=opts["dataset"] or GRID_DEFAULTS["dataset"],
        classes=None if opts["classes"] is None else tuple(parse_int_list(opts["classes"], "--classes")),
        oe_dataset=opts["oe_dataset"] or GRID_DEFAULTS["oe_dataset"],
        n_oe=tuple(parse_budgets(opts["n_oe"] or GRID_DEFAULTS["n_oe"], "--n-oe", fractions=True)),
        oe_classes=tuple(parse_budgets(opts["oe_classes"] or GRID_DEFAULTS["oe_classes"], "--oe-classes",
                                       names=(OE_ALL, OE_NEXT))),
    )


def build_run(opts: dict[str, Any]) -> RunOptions:
    """The run options."""
    return RunOptions(device=opts["device"], data_root=opts["data_root"], download=opts["download"],
                      progress=opts["progress"], cache_dir=opts["cache_dir"], disk_cache=opts["disk_cache"],
                      executor=opts["executor"], address=opts["address"], cpus_per_cell=opts["cpus_per_cell"],
                      retries=opts["retries"])


MEASURED_SUITES = ("robustness", "verification")  # measurements with their own plan and tables


@click.command()
@click.option("--suite", type=click.Choice(sorted([*SUITES, *GRID_SUITES, *MEASURED_SUITES, "stress"])), default=None,
              help="Run one of the paper's experiments (table2, table3, fig4, fig5) instead of a plain grid; "
                   "writes table.md, table.csv, suite.json and figures to OUT. 'classifier' (with --protocol "
                   "mnist-vs-letters or split-mnist): every classifier-based detector, seeds 0-2, table.md and figures; "
                   "'calibration' (same protocols): accuracy, ECE and NLL before / after temperature scaling, and MC "
                   "dropout and a deep ensemble with each uncertainty score; 'robustness' (default protocol mnist-vs-letters): "
                   "standard and adversarially trained classifiers under FGSM / PGD, transfer between classifiers, "
                   "detectors under attack; 'verification' (same default): certified accuracy (interval and DeepPoly "
                   "bounds) of standard, PGD-trained and IBP-trained classifiers, rotation certificates, neuron coverage "
                   "(--methods picks the models); 'stress': geom and layers on MNIST and one-class EMNIST letters (--dataset "
                   "picks one) with 16 outliers from each source (the other data set, digits-28, synthetic noise, blobs, "
                   "strokes), one table of layers against geom.")
@click.option("--tables-only", is_flag=True, help="Rebuild OUT's tables and figures from results.jsonl, without training.")
@protocol_options
@grid_options
@run_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory; rerun with the same one to resume.")
def bench(suite: str | None, tables_only: bool, out: str, **opts: Any) -> None:
    """Run or resume a benchmark grid, or a suite (--suite).

    Results go to OUT/results.jsonl (one row per finished cell), OUT/summary.md,
    OUT/run.json and OUT/scores/ (each cell's test scores). Rerunning with the same OUT
    skips finished cells. A suite also writes OUT/table.md, OUT/table.csv, OUT/suite.json
    and PNG figures; --tables-only redraws them from what is finished.
    """
    apply_threads(opts["threads"])
    command = ["oodscope", *sys.argv[1:]] if sys.argv else None
    if distributed.active() and (tables_only or suite not in (None, *SUITES)):
        raise InputError("under torchrun, bench runs a plain grid or the table2, table3, fig4 and fig5 suites")
    if tables_only:
        _tables_only(Path(out), suite, opts["data_root"])
        return
    if suite in GRID_SUITES:
        _run_grid_suite(suite, out, opts, command)
        return
    if suite in MEASURED_SUITES:
        if opts["executor"] != "local":
            raise InputError(f"--suite {suite} runs its own plan in this process; --executor ray runs grids and "
                             "the table2, table3, fig4, fig5, stress, classifier and calibration suites")
        _run_measured(suite, out, opts, command)
        return
    if suite == "stress":
        _run_stress(out, opts, command)
        return
    if suite is not None:
        _run_suite(suite, out, opts, command)
        return
    methods = parse_methods(opts["methods"] or GRID_DEFAULTS["methods"])
    config = BenchConfig(
        out=out,
        protocol=build_protocol(opts),
        methods=methods,
        seeds=parse_int_list(opts["seeds"] or GRID_DEFAULTS["seeds"], "--seeds"),
        preset=opts["preset"],
        variants=parse_variants(opts["variants"], methods),
        overrides=parse_settings(opts["settings"], methods),
        run=build_run(opts),
        command=command,
    )
    run_bench(config)
    if not distributed.is_main():  # torchrun: rank 0 reports
        return
    click.echo((config.directory / "summary.md").read_text(encoding="utf-8"))
    click.echo(f"results: {config.directory / 'results.jsonl'}\nsummary: {config.directory / 'summary.md'}")


def _run_grid_suite(suite: str, out: str, opts: dict[str, Any], command: list[str] | None) -> None:
    """A family of detectors as a plain grid under a multi-class protocol; its table is the
    summary's, written to table.md beside the figures. Methods needing known outliers are left
    out (and said so) when the benchmark has no outlier set disjoint from its test images."""
    from oodscope.figures import write_figures  # matplotlib only when a suite needs it

    spec = GRID_SUITES[suite]
    if opts["protocol"] == OneClass.name:
        raise InputError(f"--suite {suite} runs on a multi-class benchmark: --protocol mnist-vs-letters or split-mnist")
    if opts["variants"]:
        raise InputError("--variant cannot be combined with --suite")
    protocol = build_protocol(opts)
    family = spec.methods or [m for m, cls in registry().items() if cls.family == spec.family and cls.unavailable() is None]
    methods = family if opts["methods"] is None else parse_methods(opts["methods"])
    stray = [m for m in methods if m not in family]
    if stray:
        raise InputError(f"--suite {suite} runs {', '.join(family)}; not {', '.join(stray)}")
    try:
        protocol.outlier_source()
    except InputError as e:
        skipped = [m for m in methods if registry()[m].requires.outliers]
        methods = [m for m in methods if m not in skipped]
        if skipped:
            click.echo(f"left out (they need known outliers): {', '.join(skipped)}: {e}", err=True)
    config = BenchConfig(
        out=out, protocol=protocol, methods=methods,
        seeds=spec.seeds if opts["seeds"] is None else parse_int_list(opts["seeds"], "--seeds"),
        preset=opts["preset"], variants=spec.variants or None, overrides=parse_settings(opts["settings"], methods),
        run=build_run(opts), command=command,
    )
    run_bench(config)
    summary = (config.directory / "summary.md").read_text(encoding="utf-8")
    write_text_atomic(config.directory / "table.md", summary)
    paths = write_figures(config.directory)
    if suite == "calibration":
        from oodscope.figures.calibration_suite import write_reliability

        paths += write_reliability(config)
    click.echo(summary)
    _echo_paths(config.directory, [config.directory / "table.md", *paths])


def _run_measured(suite: str, out: str, opts: dict[str, Any], command: list[str] | None) -> None:
    """The robustness (:mod:`oodscope.bench.measured.robustness`) or verification
    (:mod:`oodscope.bench.measured.verification`) suite on a multi-class benchmark."""
    if opts["variants"] or opts["settings"] or (opts["methods"] and suite == "robustness"):
        raise InputError(f"--suite {suite} sets its own models" + (" and detectors (no --methods, --set or --variant)"
                                                                   if suite == "robustness" else " (no --set or --variant)"))
    benchmark = "mnist-vs-letters" if opts["protocol"] == OneClass.name else opts["protocol"]
    seeds = [0] if opts["seeds"] is None else parse_int_list(opts["seeds"], "--seeds")
    if suite == "robustness":
        from oodscope.bench.measured.robustness import RobustnessPlan, run_robustness

        run_robustness(RobustnessPlan.for_preset(opts["preset"], benchmark=benchmark, seeds=seeds), out, build_run(opts), command)
    else:
        from oodscope.bench.measured.verification import VerificationPlan, run_verification

        models = {} if opts["methods"] is None else {"models": [m.strip() for m in opts["methods"].split(",") if m.strip()]}
        run_verification(VerificationPlan.for_preset(opts["preset"], benchmark=benchmark, seeds=seeds, **models), out,
                         build_run(opts), command)
    click.echo((Path(out) / "table.md").read_text(encoding="utf-8"))
    _echo_paths(Path(out), [Path(out) / "table.md", Path(out) / "summary.md"])


def _run_stress(out: str, opts: dict[str, Any], command: list[str] | None) -> None:
    """The stress grid of outlier sources (:mod:`oodscope.bench.sanity.stress`)."""
    from oodscope.bench.sanity.stress import StressPlan, run_stress

    if opts["variants"] or opts["oe_dataset"] or opts["oe_classes"] or opts["protocol"] != OneClass.name:
        raise InputError("--suite stress runs the one-class protocol over its own outlier sources "
                         "(no --oe, --oe-classes, --variant or --protocol)")
    n_oe = parse_budgets(opts["n_oe"] or "16", "--n-oe")
    if len(n_oe) != 1 or not isinstance(n_oe[0], int):
        raise InputError("--suite stress takes one number of outliers (--n-oe N)")
    plan = StressPlan(preset=opts["preset"], n_oe=n_oe[0],
                      **({} if opts["dataset"] is None else {"datasets": [opts["dataset"]]}),
                      **({} if opts["classes"] is None else {"classes": parse_int_list(opts["classes"], "--classes")}),
                      **({} if opts["seeds"] is None else {"seeds": parse_int_list(opts["seeds"], "--seeds")}),
                      **({} if opts["methods"] is None else {"methods": parse_methods(opts["methods"])}))
    table = run_stress(plan, out, build_run(opts), command, overrides=parse_settings(opts["settings"], plan.methods))
    click.echo(table.read_text(encoding="utf-8"))
    _echo_paths(Path(out), [table])


def _run_suite(suite: str, out: str, opts: dict[str, Any], command: list[str] | None) -> None:
    """Resolve the suite with the given overrides, run it, draw its figures, print its table."""
    from oodscope.bench.paper.run import run_suite
    from oodscope.figures import write_figures  # matplotlib only when a suite needs it

    if opts["protocol"] != OneClass.name:
        raise InputError(f"--suite {suite} is a one-class experiment; it cannot run under --protocol {opts['protocol']}")
    if opts["variants"]:
        raise InputError("--variant cannot be combined with --suite (the suite sets its own variants)")
    dataset = opts["dataset"] or GRID_DEFAULTS["dataset"]
    methods = None if opts["methods"] is None else parse_methods(opts["methods"])
    spec = make_spec(
        suite, dataset, opts["preset"], n_classes_of(dataset, opts["data_root"], opts["download"]),
        oe_dataset=opts["oe_dataset"],
        classes=None if opts["classes"] is None else parse_int_list(opts["classes"], "--classes"),
        seeds=None if opts["seeds"] is None else parse_int_list(opts["seeds"], "--seeds"),
        n_oe=None if opts["n_oe"] is None else parse_budgets(opts["n_oe"], "--n-oe"),
        oe_classes=None if opts["oe_classes"] is None else parse_budgets(opts["oe_classes"], "--oe-classes"),
        methods=methods,
        unsupervised=[m for m, cls in registry().items() if not cls.requires.outliers],
    )
    config = BenchConfig(out=out, overrides=parse_settings(opts["settings"], spec.methods), run=build_run(opts),
                         command=command)
    run_suite(spec, config)
    if not distributed.is_main():  # torchrun: rank 0 draws and reports
        return
    paths = write_figures(config.directory)
    click.echo((config.directory / "table.md").read_text(encoding="utf-8"))
    _echo_paths(config.directory, paths)


def _tables_only(directory: Path, suite: str | None, data_root: str | None) -> None:
    """Redraw a suite's tables and figures (or a plain grid's figures) from its results."""
    from oodscope.figures import rebuild_outputs, write_figures

    from oodscope.bench.measured.tables import plan_suite, write_tables

    if plan_suite(directory) is not None:
        from oodscope.results import ResultsLog, first_per_cell

        _echo_paths(directory, [write_tables(directory, list(first_per_cell(ResultsLog(directory / "results.jsonl").rows()).values()))])
        return
    info = read_suite(directory)
    if info is None:
        if suite is not None:
            raise InputError(f"{directory}: no suite.json; run the suite there first")
        if not (directory / "results.jsonl").is_file():
            raise InputError(f"{directory}: no results.jsonl to draw from")
        paths = write_figures(directory, data_root)
        if (directory / "table.md").is_file():  # a grid suite's table: the summary (rewritten by merge)
            paths.insert(0, write_text_atomic(directory / "table.md", (directory / "summary.md").read_text(encoding="utf-8")))
        _echo_paths(directory, paths)
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
