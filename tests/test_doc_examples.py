"""Every code example of the documentation site and of the README runs (``scripts/doc_examples.py``:
Python and shell fences, each page in a folder of its own, commands that train on the smoke preset).
The default run runs the fast ones; ``-m slow`` the fences marked ``slow``. The fences that never run
are listed here, each with its reason, and there are few of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import doc_examples as dx  # noqa: E402
import docs_jobs  # noqa: E402

MAX_NOT_RUN = 6
PAGES = [p.relative_to(ROOT).as_posix() for p in dx.pages()]


def by_page(stdout: str, stderr: str, rc: int) -> dict[str, list[dict]]:
    """The runner's results, by page."""
    rows = [json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines() if line.startswith(dx.MARK)]
    assert rows, f"the examples did not run (rc {rc}):\n{stderr[-4000:]}"
    pages: dict[str, list[dict]] = {}
    for row in rows:
        pages.setdefault(row["page"], []).append(row)
    return pages


def check(page: str, results: dict[str, list[dict]]) -> None:
    rows = [r for r in results.get(page, []) if r["status"] != "skipped"]
    failed = [f"{r['page']}:{r['line']}: {r.get('error')}\n{r.get('traceback', '')}" for r in rows
              if r["status"] != "ok"]
    assert not failed, "\n\n".join(failed)


@pytest.fixture(scope="module")
def default_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """The default tier of every page, run in one process beside the site's build (:mod:`docs_jobs`)."""
    run = docs_jobs.job("examples", request, tmp_path_factory)
    rc, out, err = run.wait()
    return by_page(out, err, rc)


def pages_in(tier: str) -> list[str]:
    return [p for p in PAGES if any(not dx.selected(ex, tier) for ex in dx.examples(ROOT / p))]


@pytest.mark.parametrize("page", pages_in("default"))
def test_examples_run(page: str, default_results: dict[str, list[dict]]) -> None:
    rows = default_results.get(page, [])
    expected = [ex.line for ex in dx.examples(ROOT / page) if not dx.selected(ex, "default")]
    assert [r["line"] for r in rows if r["status"] != "skipped"] == expected, "not every example ran"
    check(page, default_results)


@pytest.mark.slow
@pytest.mark.parametrize("page", pages_in("slow"))
def test_slow_examples_run(page: str, tmp_path: Path, data_root: Path) -> None:
    """The fences marked ``slow`` (MNIST, minutes), one page at a time, on the smoke preset."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "doc_examples.py"), "--tier", "slow", "--work",
                           str(tmp_path), str(ROOT / page)], capture_output=True, text=True, timeout=3600, cwd=ROOT,
                          env={**os.environ, "OODSCOPE_DATA": str(data_root)})
    check(page, by_page(done.stdout, done.stderr, done.returncode))


def test_the_examples_that_never_run_are_few_and_justified() -> None:
    never = [(ex.where, ex.no_run, dx.NO_RUN[ex.no_run]) for p in PAGES for ex in dx.examples(ROOT / p) if ex.no_run]
    listing = "\n".join(f"{where}: {reason} ({why})" for where, reason, why in never)
    print("examples never run:\n" + listing)
    assert 0 < len(never) <= MAX_NOT_RUN, listing
    assert all(why for _, _, why in never)


def test_only_the_set_up_commands_are_left_out_by_rule() -> None:
    """The rule leaves out exactly the commands that build the environment; in the README, exactly
    its two set-up commands."""
    left_out = {p: [c for ex in dx.examples(ROOT / p) if ex.lang == "shell" and not ex.no_run
                    for c in dx.commands(ex.code) if dx.is_setup(c.split())] for p in PAGES}
    assert left_out["README.md"] == ["bash scripts/setup.sh", "bash scripts/test.sh"]
    for page, cmds in left_out.items():
        for cmd in cmds:
            assert cmd.split()[:2] in (["bash", "scripts/setup.sh"], ["bash", "scripts/test.sh"], ["pip", "install"]), \
                f"{page}: {cmd}"


def test_the_rules(tmp_path: Path) -> None:
    """What docs/about.md promises of the rules is what the runner does."""
    code = ("bash scripts/setup.sh ray && .venv/bin/oodscope demo   # a comment\n"
            ".venv/bin/oodscope fit --method geom --train a/ \\\n    --preset cpu --out m/\n"
            "# only a comment\n"
            "head -c 32 /dev/urandom | base64 > key.txt\n")
    assert dx.commands(code) == ["bash scripts/setup.sh ray", ".venv/bin/oodscope demo",
                                 ".venv/bin/oodscope fit --method geom --train a/ --preset cpu --out m/",
                                 "head -c 32 /dev/urandom | base64 > key.txt"]
    assert dx.is_setup(["bash", "scripts/setup.sh", "ray"]) and not dx.is_setup([".venv/bin/oodscope", "demo"])
    assert dx.smoke(["oodscope", "fit", "--preset", "cpu", "--out", "m"]) == ["oodscope", "fit", "--preset", "smoke",
                                                                               "--out", "m"]
    assert dx.smoke(["oodscope", "bench", "--suite", "table3"])[-2:] == ["--preset", "smoke"]
    assert dx.smoke(["torchrun", "-m", "oodscope", "fit", "--train", "a"])[-2:] == ["--preset", "smoke"]
    for untouched in (["oodscope", "bench", "--suite", "conformal", "--from", "d"], ["oodscope", "score", "m", "x"]):
        assert dx.smoke(untouched) == untouched
    fence = "```bash no-run=server\nx\n```\n```python slow\ny = 1\n```\n```text\nz\n```\n"
    page = tmp_path / "rules-page.md"
    page.write_text(fence, encoding="utf-8")
    found = dx.examples(page)
    assert [(e.lang, e.no_run, e.slow) for e in found] == [("shell", "server", False), ("python", None, True)]
    assert dx.selected(found[0], "default") and dx.selected(found[0], "slow")
    assert dx.selected(found[1], "default") and not dx.selected(found[1], "slow")
    page.write_text("```bash no-run=because\nx\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no-run reason"):
        dx.examples(page)
