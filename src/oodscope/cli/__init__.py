"""The ``oodscope`` command line: ``demo``, ``bench``, ``merge``, ``report``, ``fit``, ``score``, ``threshold``, ``serve``, ``export``, ``attack``, ``verify`` and ``study``.

Every expected failure (bad data, bad input, bad model file, missing or unreadable
paths) is reported as one line ``error: <message>`` on stderr with exit status 2.
"""

from __future__ import annotations

import click

import oodscope
from oodscope.cli.attack import attack
from oodscope.cli.bench import bench
from oodscope.cli.demo import demo
from oodscope.cli.errors import ErrorReportingGroup
from oodscope.cli.export import export
from oodscope.cli.fit import fit
from oodscope.cli.merge import merge
from oodscope.cli.methods import describe, methods
from oodscope.cli.report import report
from oodscope.cli.score import score
from oodscope.cli.serve import serve
from oodscope.cli.study import study
from oodscope.cli.threshold import threshold
from oodscope.cli.verify import verify


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(oodscope.__version__, prog_name="oodscope")
def cli() -> None:
    """oodscope: out-of-distribution detection for images."""


cli.add_command(demo)
cli.add_command(bench)
cli.add_command(merge)
cli.add_command(fit)
cli.add_command(score)
cli.add_command(threshold)
cli.add_command(serve)
cli.add_command(export)
cli.add_command(attack)
cli.add_command(verify)
cli.add_command(report)
cli.add_command(study)
cli.add_command(methods)
cli.add_command(describe)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="oodscope")


__all__ = ["cli", "main"]
