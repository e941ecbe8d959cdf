"""A table of text cells rendered three ways: Markdown, CSV and HTML.

Every table oodscope shows (``summary.md``, a suite's ``table.md`` / ``table.csv``, the HTML
report) is built once as a :class:`Table` and rendered from it, so the three never disagree.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

MISSING = "–"
_ALIGN_CLASS = {"right": "r", "center": "c"}
_MD_RULE = {None: "---", "left": ":---", "right": "---:", "center": ":---:"}


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes included, so safe inside attributes too)."""
    return html.escape(str(value), quote=True)


@dataclass
class Table:
    """A header and rows of text cells.

    Attributes:
        header: Column titles.
        rows: Rows of cells (shorter rows are padded with empty cells).
        align: Per column ``"right"``, ``"center"``, ``"left"`` or None; default: the first
            column left, the others right (numbers).
        caption: A title shown above the HTML table (Markdown and CSV leave it to the caller).
    """

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: list[str | None] | None = None
    caption: str = ""

    @property
    def width(self) -> int:
        """The number of columns."""
        return max([len(self.header)] + [len(r) for r in self.rows])

    def _aligns(self) -> list[str | None]:
        default = [None] + ["right"] * (self.width - 1)
        given = list(self.align or [])
        return given + default[len(given):]

    def _padded(self, row: Sequence[str]) -> list[str]:
        return [str(c) for c in row] + [""] * (self.width - len(row))

    def markdown(self) -> str:
        """GitHub Markdown (``|`` inside a cell is escaped)."""
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in self._padded(cells)) + " |"

        rule = "|" + "|".join(_MD_RULE.get(a, "---") for a in self._aligns()) + "|"
        return "\n".join([line(self.header), rule, *(line(r) for r in self.rows)])

    def csv(self) -> str:
        """The header and rows as CSV."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self._padded(self.header))
        writer.writerows(self._padded(r) for r in self.rows)
        return buf.getvalue()

    def html(self) -> str:
        """An HTML ``<table>`` (cells escaped) in a scrolling ``<div>``, with the caption above it."""
        aligns = self._aligns()

        def cell(tag: str, text: str, i: int) -> str:
            cls = _ALIGN_CLASS.get(aligns[i] or "")
            return f"<{tag} class=\"{cls}\">{esc(text)}</{tag}>" if cls else f"<{tag}>{esc(text)}</{tag}>"

        parts = ["<div class=\"scroll\">"]
        if self.caption:
            parts.append(f"<div class=\"caption\">{esc(self.caption)}</div>")
        parts.append("<table><thead><tr>" + "".join(cell("th", h, i) for i, h in enumerate(self._padded(self.header)))
                     + "</tr></thead><tbody>")
        for row in self.rows:
            parts.append("<tr>" + "".join(cell("td", c, i) for i, c in enumerate(self._padded(row))) + "</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)
