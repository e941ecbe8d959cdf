"""The two long jobs of the documentation tests, started side by side: the site's build
(``scripts/docs.sh``: Sphinx, warnings as errors) and the run of the examples' default tier
(``scripts/doc_examples.py``). Each is one single-threaded process, so on a machine of two cores or
more they overlap each other (and the rest of the test run, which uses one thread). A job starts
when the first test needing either of them does, and only if a test of this session needs it."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = {"site": "test_docs_site.py", "examples": "test_doc_examples.py"}


@dataclass
class Job:
    proc: subprocess.Popen
    out: Path  # the job's output folder
    log: Path  # its stdout
    err: Path  # its stderr

    def wait(self, timeout: float = 1800) -> tuple[int, str, str]:
        rc = self.proc.wait(timeout=timeout)
        return rc, self.log.read_text(encoding="utf-8"), self.err.read_text(encoding="utf-8")


_JOBS: dict[str, Job] = {}


def _stop_all() -> None:
    for job in _JOBS.values():
        if job.proc.poll() is None:
            job.proc.kill()


atexit.register(_stop_all)


def _command(name: str, out: Path) -> tuple[list[str], dict[str, str]]:
    if name == "site":  # the script users run, with this interpreter
        return ["bash", str(ROOT / "scripts" / "docs.sh")], {"PYTHON": sys.executable, "OODSCOPE_DOCS_OUT": str(out)}
    return [sys.executable, str(ROOT / "scripts" / "doc_examples.py"), "--tier", "default", "--work", str(out)], {}


def _needed(session: pytest.Session) -> set[str]:
    files = {Path(str(item.fspath)).name for item in session.items}
    return {name for name, test_file in TESTS.items() if test_file in files}


def job(name: str, request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> Job:
    """The job ``name`` ("site" or "examples"), starting it (and the other, if this session needs it)."""
    for wanted in sorted(_needed(request.session) | {name}):
        if wanted in _JOBS:
            continue
        folder = tmp.mktemp(f"docs-{wanted}")
        out, log, err = folder / "out", folder / "stdout.txt", folder / "stderr.txt"
        if wanted == "site" and not _has_sphinx():
            continue
        cmd, env = _command(wanted, out)
        with open(log, "w") as so, open(err, "w") as se:
            proc = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=ROOT, env={**os.environ, **env})
        _JOBS[wanted] = Job(proc, out, log, err)
    if name not in _JOBS:
        pytest.skip("the docs extra is not installed (pip install 'oodscope[docs]')")
    return _JOBS[name]


def _has_sphinx() -> bool:
    try:
        import sphinx  # noqa: F401
    except ImportError:
        return False
    return True
