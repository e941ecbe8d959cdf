"""Progress of long work: a bar on a terminal, a few plain lines in a log.

:func:`progress` returns a tqdm bar when standard error is a terminal. When it is not (output
sent to a file or a pipe, as in CI or ``nohup``), a bar would write every update as a
carriage-return line; instead :class:`LogProgress` writes one line when the work starts, one
at each quarter and one when it ends, each with the elapsed time and the latest postfix
(for example the loss).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm

QUARTERS = (25, 50, 75)


class LogProgress:
    """A progress counter that writes a handful of whole lines (start, 25/50/75 %, end).

    It offers the part of tqdm's interface oodscope uses: ``update``, ``set_postfix``,
    ``close``, ``write`` and use as a context manager.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", file: TextIO | None = None, initial: int = 0) -> None:
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.file = file if file is not None else sys.stderr
        self.n = int(initial)
        self.postfix = ""
        self.start = time.perf_counter()
        self.closed = False
        self._next = 0
        self._skip_passed()
        self._line(f"started, {self.n}/{self.total} {unit}")

    def _skip_passed(self) -> None:
        while self._next < len(QUARTERS) and self.total and 100 * self.n >= QUARTERS[self._next] * self.total:
            self._next += 1

    def _line(self, text: str) -> None:
        tail = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {text}{tail}", file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units; write a line when a quarter of the total is passed."""
        self.n += n
        if self._next < len(QUARTERS) and self.total and 100 * self.n >= QUARTERS[self._next] * self.total:
            self._skip_passed()
            self._line(f"{100 * self.n // self.total}% ({self.n}/{self.total} {self.unit}, "
                       f"{time.perf_counter() - self.start:.0f} s)")

    def set_postfix(self, **values: Any) -> None:
        """Remember ``key=value`` pairs, shown on the next line written."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, message: str) -> None:
        """Write a message line (what ``tqdm.write`` does around a bar)."""
        print(message, file=self.file, flush=True)

    def close(self) -> None:
        """Write the final line once."""
        if not self.closed:
            self.closed = True
            self._line(f"done, {self.n}/{self.total} {self.unit} in {time.perf_counter() - self.start:.1f} s")

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: standard error) is an interactive terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(total: int, desc: str, enabled: bool = True, unit: str = "it", initial: int = 0) -> Any:
    """A progress reporter for ``total`` units of work: a tqdm bar on a terminal, a
    :class:`LogProgress` otherwise, and a silent (disabled) bar when ``enabled`` is False."""
    if enabled and not is_terminal():
        return LogProgress(total, desc, unit, initial=initial)
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr,
                dynamic_ncols=True, unit=unit, initial=initial)


def message(text: str) -> None:
    """Write a line to standard error without breaking a running bar."""
    tqdm.write(text, file=sys.stderr)
