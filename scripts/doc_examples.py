"""Find and run the code examples of the documentation site (``docs/**/*.md``) and the README.

Each page runs in a fresh working folder of its own, its examples in order: Python examples
``exec``-uted in one namespace per page, shell examples command by command; a detector a page
registers is forgotten after it. The folders the examples name (``my_images/``,
``known_outliers/``, ...) are made once from scikit-learn's digits, and ``model/`` is a ``layers``
model fitted on them (:func:`fixture`). The rules, which
``docs/about.md`` states for readers:

* a fence's first word is its language; ``python``, ``bash`` and ``sh`` fences run, others do not;
* ``oodscope fit`` and ``oodscope bench`` run with ``--preset smoke`` (replacing the preset named;
  not for ``--suite conformal`` or ``--tables-only``, which take none);
* ``bash scripts/setup.sh ...``, ``bash scripts/test.sh ...`` and ``pip install ...`` are not run:
  they create the environment the examples run in (or run the whole test suite);
* a fence marked ``slow`` runs only in the ``slow`` tier (``pytest -m slow``);
* a fence marked ``no-run=REASON`` never runs; REASON must be a key of :data:`NO_RUN`.

``oodscope`` commands run in this process through the click group (one import of torch for all of
them); any other command runs under ``bash`` with the virtual environment first on ``PATH``.

    python scripts/doc_examples.py                      # the default tier, every page
    python scripts/doc_examples.py --tier slow docs/how-to/scale-out.md
    python scripts/doc_examples.py --list               # every example, with what happens to it

Prints one line per example, ``@@doc-example`` and a JSON object (page, line, status ``ok`` /
``failed`` / ``skipped``, reason, seconds, error), among what the examples print; exits 1 if one
failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGS = {"python": "python", "bash": "shell", "sh": "shell", "shell": "shell"}
NO_RUN = {
    "server": "starts a service that runs until it is stopped; its endpoints are tested by tests/test_serve.py",
    "cluster": "needs a Ray cluster of several machines",
    "gpus": "needs several GPUs (torchrun with NCCL)",
    "lab": "the lab notebook's experiments: hours of compute at the cpu preset, still most of an hour at the smoke "
           "preset (fig4, fig5: hundreds of cells); tests/test_suites.py checks every suite's cells and tables and "
           "runs table3 end to end, and table3 and the classifier suite run as slow examples",
}
SETUP_COMMANDS = (("bash", "scripts/setup.sh"), ("bash", "scripts/test.sh"), ("pip", "install"))
MARK = "@@doc-example"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")


@dataclass
class Example:
    """One fenced code block of a page."""

    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str  # "python" or "shell"
    code: str
    slow: bool = False
    no_run: str | None = None  # a key of NO_RUN
    flags: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every page whose examples run: the README and the site's Markdown pages, but not the lab
    notebook (a record of commands as they were run, not examples)."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "BENCHMARKS.md" and "_build" not in p.parts)
    return [ROOT / "README.md", *docs]


def examples(page: Path) -> list[Example]:
    """The runnable fences of ``page`` (``python``, ``bash``, ``sh``), with their flags.

    Raises:
        ValueError: an unknown flag, or a ``no-run`` reason that is not a key of :data:`NO_RUN`.
    """
    out: list[Example] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    rel = page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else str(page)
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        end = i + 1
        while end < len(lines) and not re.match(rf"^ {{0,{indent + 3}}}{fence}\s*$", lines[end]):
            end += 1
        words = info.split()
        lang = RUN_LANGS.get(words[0] if words else "")
        if lang is not None:
            body = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1:end])
            ex = Example(rel, i + 1, lang, body + "\n", flags=words[1:])
            for flag in words[1:]:
                if flag == "slow":
                    ex.slow = True
                elif flag.startswith("no-run="):
                    ex.no_run = flag.split("=", 1)[1]
                    if ex.no_run not in NO_RUN:
                        raise ValueError(f"{ex.where}: no-run reason {ex.no_run!r} is not one of {sorted(NO_RUN)}")
                else:
                    raise ValueError(f"{ex.where}: unknown fence flag {flag!r} (known: slow, no-run=REASON)")
            out.append(ex)
        i = end + 1
    return out


def commands(code: str) -> list[str]:
    """The commands of a shell example: continuation lines joined, comments and blank lines dropped,
    ``a && b`` split into ``a`` and ``b`` (a line with pipes, redirections or ``$(...)`` stays whole)."""
    out: list[str] = []
    for line in re.sub(r"\\\n", " ", code).splitlines():
        tokens = shlex.split(line, comments=True)
        if not tokens:
            continue
        if needs_shell(line):
            out.append(line.split(" #", 1)[0].strip())
            continue
        part: list[str] = []
        for tok in [*tokens, "&&"]:
            if tok != "&&":
                part.append(tok)
            elif part:
                out.append(shlex.join(part))
                part = []
    return out


def needs_shell(line: str) -> bool:
    """Whether a command line uses shell syntax (pipes, redirections, substitutions)."""
    return bool(re.search(r"[|<>]|\$\(", line.split(" #", 1)[0]))


def is_setup(tokens: list[str]) -> bool:
    """A set-up command the rules leave out (see the module docstring)."""
    return any(tokens[:2] == list(pair) for pair in SETUP_COMMANDS) or tokens[:3] == ["python", "-m", "pip"]


def smoke(tokens: list[str]) -> list[str]:
    """``tokens`` with ``--preset smoke`` where an ``oodscope fit`` / ``bench`` (also under torchrun
    ``-m oodscope``) trains."""
    try:
        at = next(i for i, t in enumerate(tokens) if t in ("fit", "bench") and i > 0
                  and (tokens[i - 1].endswith("oodscope")))
    except StopIteration:
        return tokens
    if tokens[at] == "bench" and ("conformal" in tokens or "--tables-only" in tokens):
        return tokens
    out = list(tokens)
    if "--preset" in out:
        out[out.index("--preset") + 1] = "smoke"
    else:
        out += ["--preset", "smoke"]
    return out


def oodscope_args(tokens: list[str]) -> list[str] | None:
    """The arguments of an ``oodscope`` command run in this process, or None for any other command."""
    if tokens and Path(tokens[0]).name == "oodscope" and "=" not in tokens[0]:
        return tokens[1:]
    return None


def fixture(folder: Path) -> Path:
    """The folders the examples name, made once from scikit-learn's digits (uint8 8×8 PNG files) as
    ``docs/getting-started/your-images.md`` makes them: ``my_images/`` the training digits 0–4,
    ``known_outliers/`` sixteen of 5–9, ``known_other_outliers/`` twenty more, ``new_images/`` 40
    test digits, ``cal_images/`` the test digits 0–4, ``my_labelled_images/``
    40 training images of each digit in a sub-folder per class, ``photo.png`` and ``other.jpg``; and ``model/``,
    ``oodscope fit --method layers`` on them at the smoke preset."""
    import numpy as np
    from PIL import Image

    from oodscope.data import load

    train, test = load("digits", "train"), load("digits", "test")

    def write(name: str, images: np.ndarray) -> None:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image[0]).save(folder / name / f"{i:04d}.png")

    normal, other = train.images[train.labels < 5], train.images[train.labels >= 5]
    write("my_images", normal)
    write("known_outliers", other[:16])
    write("known_other_outliers", other[16:36])
    write("new_images", test.images[:40])
    write("cal_images", test.images[test.labels < 5])
    for c in range(10):
        write(f"my_labelled_images/{c}", train.images[train.labels == c][:40])
    Image.fromarray(test.images[0, 0]).save(folder / "photo.png")
    Image.fromarray(test.images[1, 0]).convert("RGB").save(folder / "other.jpg")
    run_cli(["fit", "--method", "layers", "--train", str(folder / "my_images"), "--outliers",
             str(folder / "known_outliers"), "--preset", "smoke", "--out", str(folder / "model")])
    return folder


def prepare(work: Path, made: Path, data_root: Path | None) -> None:
    """A page's working folder ``work``: the :func:`fixture` ``made`` as hard links (oodscope replaces
    the files it writes, atomically, so a page changes only its own names; the one page that writes
    images writes what the fixture holds), ``.venv``, ``examples``, ``scripts`` and ``docs`` linked to
    the checkout's, and ``../shared/data`` to the data root (where the examples look for MNIST)."""
    shutil.copytree(made, work, copy_function=os.link, dirs_exist_ok=True)
    for name in (".venv", "examples", "scripts", "docs"):  # what the examples run from the checkout
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    if data_root is not None:
        (work.parent / "shared").mkdir(exist_ok=True)
        (work.parent / "shared" / "data").symlink_to(data_root.resolve())


def run_cli(args: list[str]) -> None:
    """``oodscope ARGS`` in this process.

    Raises:
        RuntimeError: the command exited with a non-zero status.
    """
    from oodscope.cli import cli

    try:
        status = cli.main(args=args, prog_name="oodscope", standalone_mode=False)  # an exit's code is returned
    except SystemExit as e:
        status = e.code
    if status not in (0, None):
        raise RuntimeError(f"oodscope {shlex.join(args)} exited with status {status}")


def run_shell(example: Example, work: Path, env: dict[str, str]) -> list[str]:
    """Run a shell example's commands in ``work``; returns the set-up commands left out.

    Raises:
        RuntimeError: a command failed.
    """
    skipped = []
    for cmd in commands(example.code):
        tokens = shlex.split(cmd)
        if is_setup(tokens):
            skipped.append(cmd)
            continue
        tokens = smoke(tokens)
        args = oodscope_args(tokens)
        if args is not None:
            run_cli(args)
            continue
        text = cmd if needs_shell(cmd) else shlex.join(tokens)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=work, env=env, capture_output=True,
                              text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"{text!r} exited with status {done.returncode}: {done.stderr[-3000:]}")
    return skipped


def selected(ex: Example, tier: str) -> str | None:
    """Why ``ex`` does not run in ``tier`` (None: it runs)."""
    if ex.no_run:
        return f"no-run={ex.no_run}: {NO_RUN[ex.no_run]}"
    if tier == "default" and ex.slow:
        return "slow: runs with pytest -m slow"
    if tier == "slow" and not ex.slow:
        return "runs in the default tier"
    return None


def run_page(page: Path, tier: str, base: Path, data_root: Path | None, made: Path) -> list[dict]:
    """Run ``page``'s examples of ``tier`` in a fresh folder under ``base``; one result per example."""
    detector_registry = importlib.import_module("oodscope.detectors.registry")  # the module, not the function
    results = []
    todo = [(ex, selected(ex, tier)) for ex in examples(page)]
    if all(why for _, why in todo):
        return [{"page": ex.page, "line": ex.line, "status": "skipped", "reason": why} for ex, why in todo]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", todo[0][0].page).strip("-")
    work = base / slug / "checkout"
    work.mkdir(parents=True)
    prepare(work, made, data_root)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    namespace: dict = {"__name__": "__doc_example__"}
    here = os.getcwd()
    registered = dict(detector_registry._REGISTRY)  # a detector a page registers does not outlive the page
    os.chdir(work)
    try:
        for ex, why in todo:
            row = {"page": ex.page, "line": ex.line, "lang": ex.lang}
            if why:
                results.append({**row, "status": "skipped", "reason": why})
                continue
            start = time.perf_counter()
            try:
                if ex.lang == "python":
                    exec(compile(ex.code, ex.where, "exec"), namespace)  # noqa: S102 - our own examples
                    row["setup_skipped"] = []
                else:
                    row["setup_skipped"] = run_shell(ex, work, env)
                row["status"] = "ok"
            except BaseException as e:  # noqa: BLE001 - every failure is reported, the run goes on
                row["status"] = "failed"
                row["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[-4000:]
                if not isinstance(e, RuntimeError):
                    row["traceback"] = traceback.format_exc()[-4000:]
            row["seconds"] = round(time.perf_counter() - start, 2)
            results.append(row)
    finally:
        os.chdir(here)
        detector_registry._REGISTRY.clear()
        detector_registry._REGISTRY.update(registered)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="*", help="pages to run (default: the README and every page of docs/)")
    ap.add_argument("--tier", choices=("default", "slow", "all"), default="default")
    ap.add_argument("--list", action="store_true", help="list the examples and what happens to each; run nothing")
    ap.add_argument("--work", help="folder for the pages' working folders (default: a temporary one)")
    args = ap.parse_args(argv)
    chosen = [Path(p).resolve() for p in args.pages] or pages()
    if args.list:
        for page in chosen:
            for ex in examples(page):
                print(json.dumps({"page": ex.page, "line": ex.line, "lang": ex.lang, "flags": ex.flags,
                                  "default": selected(ex, "default"), "slow": selected(ex, "slow")}))
        return 0
    import torch

    torch.set_num_threads(1)
    data = os.environ.get("OODSCOPE_DATA")
    data_root = Path(data) if data else (ROOT.parent / "shared" / "data")
    data_root = data_root if data_root.is_dir() else None
    base = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="oodscope-doc-examples-"))
    base.mkdir(parents=True, exist_ok=True)
    made = None
    failed = False
    for page in chosen:
        todo = [ex for ex in examples(page) if not selected(ex, args.tier)]
        if todo and made is None:
            made = fixture(base / "_fixture")
        for row in run_page(page, args.tier, base, data_root, made):
            failed |= row["status"] == "failed"
            print(MARK, json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
