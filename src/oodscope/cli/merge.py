"""``oodscope merge``: gather the finished cells of several benchmark directories into one."""

from __future__ import annotations

from pathlib import Path

import click

from oodscope.bench.merge import merge_runs


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SRC [SRC...]")
@click.option("--into", "dest", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Benchmark directory to merge into (created if missing).")
def merge(sources: tuple[Path, ...], dest: Path) -> None:
    """Gather the finished cells of benchmark directories into one.

    Copies results rows and score files from each SRC into --into: for a grid or suite split
    over processes or machines, e.g. with --classes 0-4 and --classes 5-9 in two --out
    directories. Cells the destination already has are skipped; cells run with other
    settings, or another suite, data set or preset, are refused before anything is written.
    Afterwards rerun the suite's command on the destination (it finds the cells finished) or
    use --tables-only to rebuild its tables and figures.
    """
    result = merge_runs(list(sources), dest)
    for src, n in result.added.items():
        click.echo(f"{src}: {n} cells added, {result.skipped[src]} already in {dest}")
    click.echo(f"merged {result.total_added} cells into {dest}")
