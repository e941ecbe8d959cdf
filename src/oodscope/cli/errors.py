"""Reporting expected failures as one line ``error: <message>`` on stderr with exit status 2.

That holds for oodscope's own errors (bad data, input, model files, paths) and for click's
usage errors (an unknown option, a value that is not one of the choices, a missing argument),
which click would otherwise print as a usage block.
"""

from __future__ import annotations

import sys
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

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """As click's, but a usage error is one line ``error: ...`` and exit status 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            hint = f" (see '{e.ctx.command_path} --help')" if isinstance(e, click.UsageError) and e.ctx else ""
            click.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
            sys.exit(EXIT_ERROR if isinstance(e, click.UsageError) else e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; expected errors become ``error: ...`` and exit status 2."""
        try:
            return super().invoke(ctx)
        except EXPECTED as e:
            click.echo(f"error: {one_line(e)}", err=True)
            ctx.exit(EXIT_ERROR)
