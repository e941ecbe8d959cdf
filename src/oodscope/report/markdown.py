"""A small Markdown-to-HTML converter for the files a benchmark writes.

Handles ATX headings, pipe tables (with ``:--``/``--:`` alignment), bullet lists, fenced
code blocks and paragraphs; inline ```code``` and ``**bold**``. Everything else is text:
all input is HTML-escaped first, so the output never contains markup from the file.
"""

from __future__ import annotations

import re

from oodscope.report.html import esc, table

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_BULLET = re.compile(r"^[-*+]\s+(.*)$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline(text: str) -> str:
    """Escape ``text`` and render its inline ```code``` and ``**bold**`` spans."""
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", esc(text))
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def split_row(line: str) -> list[str]:
    """The cells of a pipe-table row (outer pipes optional, ``\\|`` is a literal pipe)."""
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = [c.replace("\x00", "|").strip() for c in s.replace("\\|", "\x00").split("|")]
    return cells


def _is_separator(cells: list[str]) -> bool:
    return bool(cells) and all(_SEPARATOR_CELL.match(c.replace(" ", "")) for c in cells)


def _alignment(cell: str) -> str | None:
    c = cell.strip()
    if c.startswith(":") and c.endswith(":"):
        return "center"
    return "right" if c.endswith(":") else None


def pipe_table(lines: list[str]) -> str:
    """An HTML table from consecutive pipe-table lines; the first row is the header when the
    second is a separator row (``|---|--:|``)."""
    rows = [split_row(line) for line in lines]
    header, align = None, None
    if len(rows) >= 2 and _is_separator(rows[1]):
        header, align = rows[0], [_alignment(c) for c in rows[1]]
        rows = rows[2:]
    rows = [r for r in rows if not _is_separator(r)]
    return table([inline(h) for h in header] if header else None,
                 [[inline(c) for c in r] for r in rows], align, escape=False)


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def markdown_to_html(text: str, heading_shift: int = 0) -> str:
    """Render ``text`` (Markdown) as an HTML fragment; headings move ``heading_shift`` levels down
    (capped at ``<h6>``) so a file's ``#`` title fits under the report's own headings."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre><code>" + esc("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
        elif m := _HEADING.match(stripped):
            level = min(6, len(m.group(1)) + heading_shift)
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
        elif _is_table_line(line):
            j = i
            while j < len(lines) and _is_table_line(lines[j]):
                j += 1
            out.append(pipe_table(lines[i:j]))
            i = j
        elif _BULLET.match(stripped):
            items = []
            while i < len(lines) and (b := _BULLET.match(lines[i].strip())):
                items.append(f"<li>{inline(b.group(1))}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _is_block_start(lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append("<p>" + inline(" ".join(para)) + "</p>")
    return "\n".join(out)


def _is_block_start(line: str) -> bool:
    s = line.strip()
    return bool(_HEADING.match(s) or _BULLET.match(s) or s.startswith("```") or _is_table_line(line))
