"""Reporting expected failures as one line ``error: <message>`` on stderr with exit status 2."""

from __future__ import annotations

from typing import Any

import click

from oodscope.errors import OodscopeError

EXIT_ERROR = 2
EXPECTED = (OodscopeError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line; OS errors as ``<path>: <reason>``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


class ErrorReportingGroup(click.Group):
    """A click group whose commands report :data:`EXPECTED` errors without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; expected errors become ``error: ...`` and exit status 2."""
        try:
            return super().invoke(ctx)
        except EXPECTED as e:
            click.echo(f"error: {one_line(e)}", err=True)
            ctx.exit(EXIT_ERROR)
