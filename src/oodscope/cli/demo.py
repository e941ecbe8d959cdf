"""``oodscope demo``: every detector on scikit-learn's bundled 8x8 digits, AUROC table."""

from __future__ import annotations

import time

import click

from oodscope.bench.sanity.demo import DemoResult, demo_methods, run_demo
from oodscope.cli.common import apply_threads, threads_option
from oodscope.bench.options import parse_int_list
from oodscope.detectors import settings_for

HEADER = """\
oodscope demo: one-class out-of-distribution detection on scikit-learn's 8x8 digits
(bundled, no download). For each digit c: train on the ~120 training images of c; the
test split's other digits are OOD. Every method is given {n} training images of digit
(c+1) % 10 as known outliers (methods without outlier exposure ignore them); that digit
is removed from the test set for all methods, so the test OOD images never contain the class
the outliers came from.
Methods: {methods}. Settings (preset "demo"):
{preset}"""


def describe_settings(methods: list[str]) -> str:
    """One indented line per method listing its ``demo`` preset settings."""
    lines = []
    for m in methods:
        items = " ".join(f"{k}={v}".replace(" ", "") for k, v in settings_for(m, "demo").items())
        lines.append(f"  {m}: {items or '(defaults)'}")
    return "\n".join(lines)


def format_table(result: DemoResult) -> str:
    """AUROC per class (rows) and method (columns), with a mean row."""
    width = max(8, *(len(m) + 2 for m in result.methods))
    lines = ["class".ljust(7) + "".join(m.rjust(width) for m in result.methods)]
    for c in result.classes:
        lines.append(str(c).ljust(7) + "".join(f"{result.auroc[m][c]:{width}.2f}" for m in result.methods))
    lines.append("mean".ljust(7) + "".join(f"{result.mean(m):{width}.2f}" for m in result.methods))
    lines.append("secs".ljust(7) + "".join(f"{result.seconds[m]:{width}.1f}" for m in result.methods))
    return "\n".join(lines)


@click.command()
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Data root (the digits are bundled with scikit-learn, so nothing is read from it).")
@click.option("--classes", default=None, hidden=True, help="Only these digits, e.g. 0,1 (for quick checks).")
@click.option("--outliers", "n_outliers", type=click.IntRange(min=1), default=16, show_default=True,
              help="Number of known outlier images.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
@threads_option(default=1)
def demo(data_root: str | None, classes: str | None, n_outliers: int, seed: int, progress: bool, threads: int) -> None:
    """Compare every detector on the bundled 8x8 digits.

    One digit is in-distribution at a time; prints AUROC per digit and method.
    """
    apply_threads(threads)
    chosen = None if classes is None else parse_int_list(classes, "--classes")
    methods = demo_methods()
    click.echo(HEADER.format(n=n_outliers, methods=", ".join(methods), preset=describe_settings(methods)))
    start = time.perf_counter()
    result = run_demo(chosen, methods, n_outliers, seed, data_root, progress)
    click.echo("\nAUROC (%), higher is better. secs: training + scoring time per method (a method "
               "reading a shared network, such as GEOM's f, includes that network's training)\n")
    click.echo(format_table(result))
    click.echo(f"\nfinished in {time.perf_counter() - start:.0f} s")
