"""``oodscope bench``: a resumable one-class benchmark grid written to a directory."""

from __future__ import annotations

import sys

import click

from oodscope.bench import BenchConfig, run_bench
from oodscope.bench.presets import PRESETS
from oodscope.cli.common import apply_threads, device_option, set_option, threads_option
from oodscope.cli.parsing import parse_budgets, parse_int_list, parse_settings, parse_taps


@click.command()
@click.option("--dataset", default="mnist", show_default=True, help="In-distribution data set.")
@click.option("--methods", default="geom,layers", show_default=True, help="Comma-separated detector methods.")
@click.option("--classes", default=None, help="In-distribution classes, e.g. 0-9, 0,8 or 2 (default: all).")
@click.option("--oe", "oe_dataset", default="emnist-letters", show_default=True, help="Data set of the known outliers (its train split).")
@click.option("--n-oe", default="16", show_default=True, help="Number(s) of known outliers, comma-separated; 'all' = the whole set.")
@click.option("--oe-classes", default="all", show_default=True, help="Number(s) of outlier classes to draw from, comma-separated, or 'all'.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, e.g. 0 or 0,1,2 or 0-4.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cpu", show_default=True, help="Detector settings preset.")
@device_option()
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Data root (default: $OODSCOPE_DATA or ~/.cache/oodscope).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory; rerun with the same one to resume.")
@click.option("--taps", "taps", multiple=True, help="Taps variant for methods with taps, e.g. z4 or z1+z2+z3+z4 (repeatable; one cell each).")
@set_option()
@click.option("--download/--no-download", default=True, show_default=True, help="Download missing data files.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
@threads_option()
def bench(dataset: str, methods: str, classes: str | None, oe_dataset: str, n_oe: str, oe_classes: str,
          seeds: str, preset: str, device: str | None, data_root: str | None, out: str, taps: tuple[str, ...],
          settings: tuple[str, ...], download: bool, progress: bool, threads: int | None) -> None:
    """Run or resume a one-class benchmark grid.

    Results go to OUT/results.jsonl (one row per finished cell), OUT/summary.md and
    OUT/run.json. Rerunning with the same OUT skips finished cells.
    """
    apply_threads(threads)
    config = BenchConfig(
        out=out,
        dataset=dataset,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        classes=None if classes is None else parse_int_list(classes, "--classes"),
        oe_dataset=oe_dataset,
        n_oe=parse_budgets(n_oe, "--n-oe"),
        oe_classes=parse_budgets(oe_classes, "--oe-classes"),
        seeds=parse_int_list(seeds, "--seeds"),
        preset=preset,
        device=device,
        data_root=data_root,
        download=download,
        taps=parse_taps(taps),
        overrides=parse_settings(settings),
        progress=progress,
        command=["oodscope", *sys.argv[1:]] if sys.argv else None,
    )
    run_bench(config)
    click.echo((config.directory / "summary.md").read_text(encoding="utf-8"))
    click.echo(f"results: {config.directory / 'results.jsonl'}\nsummary: {config.directory / 'summary.md'}")
