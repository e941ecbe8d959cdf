"""Sphinx configuration of the oodscope documentation site (built by ``bash scripts/docs.sh``).

Sphinx with the furo theme, MyST-Parser for the Markdown pages, autodoc + napoleon for the API
reference (the docstrings are reStructuredText with Sphinx roles and Google-style sections) and
sphinx-click for the command-line reference; why this stack: ``docs/about.md``. The detector
catalogue is generated from the registry by ``docs/_ext/oodscope_docs.py``. Warnings are errors
(``-W`` in ``scripts/docs.sh``, which ``tests/test_docs_site.py`` runs).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "oodscope"
author = "the oodscope authors"
copyright = "the oodscope authors"
with open(DOCS.parent / "pyproject.toml", "rb") as f:  # the version of record
    version = release = tomllib.load(f)["project"]["version"]

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
    "oodscope_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4  # links to a page's headings (page.md#heading), with GitHub's slugs, so they work there too
myst_heading_slug_func = "myst_parser.slugs.github_slugify"

html_theme = "furo"
html_title = f"oodscope {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
