"""``oodscope report``: one self-contained HTML page from benchmark output directories."""

from __future__ import annotations

from pathlib import Path

import click

from oodscope.report import write_report


@click.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="DIR [DIR...]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: DIR/report.html; required for several directories).")
def report(dirs: tuple[Path, ...], out: Path | None) -> None:
    """Write an HTML report of benchmark directories.

    For each DIR: the command and settings that produced it, its suite and summary tables,
    tables built from results.jsonl and every PNG figure, all in one file that needs no
    network (figures embedded). Nothing is trained or recomputed.
    """
    path = write_report(list(dirs), out)
    click.echo(f"report: {path}")
