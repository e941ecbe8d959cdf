"""HTML building blocks of the report: tables (rendered by :mod:`oodscope.results.tables`),
embedded figures and the page shell."""

from __future__ import annotations

import base64

from oodscope.results.tables import esc

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; padding: 1.5em 2em 4em; max-width: 1200px; color: #1d1d1f; background: #fff;
       line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d4da; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-top: 1.6em; }
h4, h5, h6 { margin-bottom: 0.4em; }
.meta { color: #555; font-size: 0.92em; }
pre { background: #f4f5f7; border: 1px solid #e1e4e8; border-radius: 4px; padding: 0.6em 0.8em;
      overflow-x: auto; white-space: pre-wrap; word-break: break-word; font-size: 0.88em; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
.caption { font-weight: 600; font-size: 0.9em; margin-top: 0.6em; }
.caption + table { margin-top: 0.3em; }
th, td { border: 1px solid #d0d4da; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #eef1f5; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
td.c, th.c { text-align: center; }
.scroll { overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; display: block; }
figcaption { font-size: 0.88em; color: #444; margin-top: 0.3em; }
nav ul { padding-left: 1.2em; }
.note { color: #8a5a00; }
.file { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.85em;
        color: #555; margin-top: 1.2em; }
.tables { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
details { margin: 1.2em 0; border: 1px solid #e1e4e8; border-radius: 4px; padding: 0.4em 0.8em; }
details > summary { cursor: pointer; font-weight: 600; }
.notes { color: #444; font-size: 0.9em; }
"""

def figure(data: bytes, caption: str, alt: str) -> str:
    """A ``<figure>`` with the PNG ``data`` embedded as a base64 ``data:`` URI."""
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f"<figure><img src=\"{uri}\" alt=\"{esc(alt)}\"><figcaption>{esc(caption)}</figcaption></figure>"


def page(title: str, body: str) -> str:
    """The whole HTML document: ``title`` and ``body`` (an HTML fragment), inline CSS only."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
