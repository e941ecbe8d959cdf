"""The documentation site: it builds with every warning an error (Sphinx ``-W``, as
``scripts/docs.sh``), headless Chromium renders its home page, the detector catalogue and a guide
with what they must show (the catalogue lists every registered detector; the navigation reaches
every page), every decimal figure of the Benchmarks and Choosing pages (those computed from results files
included) is one the lab notebook holds, and the README stays the short page a newcomer needs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
import pytest
from PIL import Image

import docs_jobs
from conftest import run_chromium

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK = DOCS / "lab" / "BENCHMARKS.md"
GENERATED = {"genindex.html", "search.html", "py-modindex.html"}  # Sphinx's own pages, not in the navigation


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``scripts/docs.sh`` builds it (warnings are errors; :mod:`docs_jobs`)."""
    build = docs_jobs.job("site", request, tmp_path_factory)
    rc, _, err = build.wait()
    assert rc == 0, f"the site does not build without warnings:\n{err[-6000:]}"
    return build.out


def pages(site: Path) -> set[str]:
    """Every page of the built site, as a path relative to it (Sphinx's generated pages aside)."""
    return {p.relative_to(site).as_posix() for p in site.rglob("*.html")
            if not p.relative_to(site).parts[0].startswith("_") and p.name not in GENERATED}


def test_every_page_of_docs_is_built(site: Path) -> None:
    """Each Markdown page of docs/ becomes a page of the site (-W already refuses one outside every toctree)."""
    sources = {p.relative_to(DOCS).with_suffix(".html").as_posix() for p in DOCS.rglob("*.md")
               if not p.relative_to(DOCS).parts[0].startswith("_")}
    assert sources <= pages(site), sorted(sources - pages(site))


def rendered(chromium: str, page: Path, tmp_path: Path) -> str:
    """``page``'s DOM after Chromium has run its scripts."""
    proc = run_chromium(chromium, tmp_path / "profile", "--dump-dom", "--virtual-time-budget=3000", page.as_uri())
    assert "</html>" in proc.stdout, f"no DOM from chromium (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


def text_of(html: str) -> str:
    """The visible text of ``html``, roughly: tags dropped, whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def links(html: str, page: str) -> set[str]:
    """The site pages ``html`` (the page ``page``) links to, relative to the site's root."""
    out = set()
    for href in re.findall(r'href="([^"#]+)(?:#[^"]*)?"', html):
        if urlparse(href).scheme in ("http", "https", "mailto"):
            continue
        target = urlparse(urljoin("site:/" + page, unquote(href))).path.lstrip("/")
        if target.endswith(".html"):
            out.add(target)
    return out


def screenshot(chromium: str, page: Path, tmp_path: Path, name: str) -> np.ndarray:
    shot = tmp_path / f"{name}.png"
    proc = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1000",
                        "--virtual-time-budget=3000", page.as_uri())
    assert shot.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return np.asarray(Image.open(shot).convert("L")).astype(int)


def test_home_page_shows_the_example_and_navigation_reaches_every_page(site: Path, chromium: str,
                                                                       tmp_path: Path) -> None:
    html = rendered(chromium, site / "index.html", tmp_path)
    text = text_of(html)
    for shown in ("Tell whether an image is like the images a model was built for",
                  "A 30-second example", "higher = more out-of-distribution", "Where to go next"):
        assert shown in text, shown
    nav = re.search(r'<div class="sidebar-tree">(.*?)</div>\s*</div>', html, re.S)
    assert nav, "no navigation tree in the home page"
    reached = links(nav.group(1), "index.html") | {"index.html"}
    missing = pages(site) - reached
    assert not missing, f"pages the navigation does not reach: {sorted(missing)}"
    gray = screenshot(chromium, site / "index.html", tmp_path, "home")
    assert gray.std() > 20, "the home page renders blank"


def test_catalogue_lists_every_registered_detector(site: Path, chromium: str, tmp_path: Path) -> None:
    from oodscope.detectors import registry
    from oodscope.detectors.catalogue import catalogue

    html = rendered(chromium, site / "reference" / "detectors.html", tmp_path)
    table = re.search(r"<table.*?</table>", html, re.S).group(0)
    listed = re.findall(r'<a class="reference internal" href="#detector-[^"]+"><code[^>]*><span class="pre">([^<]+)<',
                        table)
    assert sorted(listed) == sorted(registry()), "the summary table does not list exactly the registered detectors"
    for e in catalogue():
        anchor = "detector-" + e["method"].replace("+", "-plus")
        assert f'href="#{anchor}"' in table, f"{e['method']}: the table does not link to its section"
        section = re.search(rf'<section id="{re.escape(anchor)}">(.*?)</section>', html, re.S)
        assert section, f"no section for {e['method']}"
        for s in e["settings"]:
            assert f">{s['name']}<" in section.group(1), f"{e['method']}: setting {s['name']} not shown"
    assert f"{len(registry())} detectors are registered" in text_of(html)


def test_a_guide_renders_its_steps(site: Path, chromium: str, tmp_path: Path) -> None:
    html = rendered(chromium, site / "how-to" / "thresholds.html", tmp_path)
    text = text_of(html)
    for shown in ("Set thresholds and decide with a guarantee", "Decide with a stated error rate", "In Python"):
        assert shown in text, shown
    code = " ".join(re.sub(r"<[^>]+>", "", block) for block in re.findall(r"<pre>(.*?)</pre>", html, re.S))
    for shown in ("oodscope threshold model/ --accept 0.99", "--fdr 0.1 --fdr-rule lond", "DecisionRule(\"bh\", 0.1)"):
        assert shown in code, shown
    assert len(re.findall(r'<div class="highlight-(?:bash|python)', html)) >= 5
    gray = screenshot(chromium, site / "how-to" / "thresholds.html", tmp_path, "guide")
    assert gray.std() > 20, "the guide renders blank"


DECIMAL = re.compile(r"(?<![\w.])\d[\d,]*\.\d+(?!\.?\d)")  # 98.84, 1,443.5; not a version (3.11.7)
LINK = re.compile(r"BENCHMARKS\.md#([^)\s]+)\)")


def without_fences(text: str) -> list[str]:
    """``text``'s lines, those of fenced code blocks blanked (a ``# comment`` there is no heading)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return out


def notebook_sections() -> dict[str, str]:
    """The lab notebook's sections by anchor (GitHub's slug of the heading, as the site links them),
    each with its text up to the next heading of its level or above."""
    from myst_parser.slugs import github_slugify

    lines = without_fences(NOTEBOOK.read_text(encoding="utf-8"))
    raw = NOTEBOOK.read_text(encoding="utf-8").splitlines()
    heads = [(i, len(m[1]), github_slugify(m[2].replace("`", ""))) for i, line in enumerate(lines)
             if (m := re.match(r"^(#{1,6}) (.*)", line))]
    sections = {}
    for k, (i, level, slug) in enumerate(heads):
        end = next((j for j, lv, _ in heads[k + 1:] if lv <= level), len(raw))
        sections[slug] = "\n".join(raw[i:end])
    return sections


def strip_links(text: str) -> str:
    return re.sub(r"\]\([^)]*\)", "]", text)


def expanded(page: Path) -> str:
    """The page as the site shows it: its ``{oodscope-results}`` blocks replaced by the tables the
    documentation build computes from the results files."""
    import sys

    sys.path.insert(0, str(DOCS / "_ext"))
    from oodscope_docs import expand_results

    return expand_results(page.read_text(encoding="utf-8"), DOCS)


def figure_units(page: Path) -> list[tuple[str, set[str]]]:
    """The page's paragraphs, table rows and footnotes that hold decimal figures, each with the
    notebook sections it cites: its own links and footnotes, else those of its part of the page
    (between ``##`` headings)."""
    lines = without_fences(expanded(page))
    notes = {m[1]: set(LINK.findall(line)) for line in lines if (m := re.match(r"^\[\^([^\]]+)\]:", line))}

    def cited(text: str) -> set[str]:
        refs = re.findall(r"\[\^([^\]]+)\](?!:)", text)
        return set(LINK.findall(text)).union(*(notes.get(r, set()) for r in refs))

    parts: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("## "):
            parts.append([])
        parts[-1].append(line)
    units = []
    for part in parts:
        around = cited("\n".join(part))
        for block in re.split(r"\n\s*\n", "\n".join(part)):
            rows = [line for line in block.splitlines() if line.strip()]
            for row in rows if rows and rows[0].startswith("|") else [" ".join(rows)]:
                if DECIMAL.search(strip_links(row)):
                    units.append((row, cited(row) or around))
    return units


@pytest.mark.parametrize("page", ["benchmarks.md", "choosing.md"])
def test_figures_come_from_the_cited_notebook_sections(page: str) -> None:
    """Every decimal figure of the page cites a section of the lab notebook, and that section holds it:
    nothing invented, nothing re-measured, every figure traceable to its command."""
    sections = notebook_sections()
    units = figure_units(DOCS / page)
    assert len(units) > 10
    for text, anchors in units:
        assert anchors, f"{page}: no lab notebook section cited for: {text[:120]}"
        unknown = anchors - set(sections)
        assert not unknown, f"{page}: no such notebook section: {sorted(unknown)}"
        cited = "\n".join(sections[a] for a in anchors)
        figures = set(DECIMAL.findall(strip_links(text)))
        missing = {f for f in figures if f not in cited}
        assert not missing, f"{page}: {sorted(missing)} not in the cited sections {sorted(anchors)}: {text[:160]}"


def test_readme_is_short_and_keeps_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "bash scripts/setup.sh && .venv/bin/oodscope demo" in readme
    assert "\nbash scripts/test.sh\n" in readme
    for target in re.findall(r"\]\(((?:docs/)?[^)#:]+\.md)", readme):
        assert (ROOT / target).is_file(), f"README links to a missing page: {target}"


def test_results_tables_are_computed_from_the_results_files(tmp_path: Path) -> None:
    """A ``{oodscope-results}`` table follows its file: change a row and the page changes; a file
    without rows stops the build."""
    import json
    import shutil
    import sys

    sys.path.insert(0, str(DOCS / "_ext"))
    from oodscope_docs import results_markdown

    source = DOCS / "lab" / "results" / "classifier-split-mnist.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    assert {r["method"] for r in rows} >= {"msp", "knn-clf", "vim"} and {r["seed"] for r in rows} == {0, 1, 2}
    shutil.copy(source, tmp_path / "rows.jsonl")
    table = results_markdown("split-mnist: rows.jsonl", tmp_path)
    msp = [r["metrics"]["auroc"] for r in rows if r["method"] == "msp"]
    assert f"| `msp` | {np.mean(msp):.2f} ± {np.std(msp):.2f} |" in table
    for r in rows:
        if r["method"] == "msp":
            r["metrics"]["auroc"] = 99.99
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert "| `msp` | **99.99 ± 0.00** |" in results_markdown("split-mnist: rows.jsonl", tmp_path)  # now the best
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no rows in empty.jsonl"):
        results_markdown("split-mnist: empty.jsonl", tmp_path)
