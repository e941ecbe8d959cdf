"""``oodscope methods`` (a table of every detector) and ``oodscope describe METHOD`` (one detector's
paper, needs, ONNX export and settings), from :mod:`oodscope.detectors.catalogue`."""

from __future__ import annotations

import click

FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
                             show_default=True, help="Plain text, a Markdown table, or JSON (every field, every setting).")


@click.command()
@FORMAT_OPTION
def methods(fmt: str) -> None:
    """Every detector: what fitting it needs, whether it exports to ONNX, its presets and its paper."""
    from oodscope.detectors.catalogue import methods_table

    click.echo(methods_table(fmt))


@click.command()
@click.argument("method")
@FORMAT_OPTION
def describe(method: str, fmt: str) -> None:
    """METHOD's paper, what fitting it needs, whether it exports to ONNX, and every setting with its
    default, its values under the presets and a description (settings go to --set KEY=VALUE)."""
    from oodscope.detectors.catalogue import describe as describe_method

    click.echo(describe_method(method, fmt))
