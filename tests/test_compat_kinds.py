"""Result directories of every kind of ``oodscope bench`` run, written by oodscope at commit d609c8e
(tests/fixtures/v2, one per kind; the commands are in tests/fixtures/v2/COMMANDS.md and in COMMANDS
below), still rebuild their tables, report, merge and resume with today's code, and running the same
command again gives the same rows and score files.

Only timings, timestamps and versions may differ between two runs of one command (checked at d609c8e:
two runs with --threads 1 on one machine agree on everything else, score files byte for byte; with
--threads 2 the metrics and scores differ, so every command here keeps --threads 1). The numbers hold
for one CPU kind: bfloat16 autocast rounds differently on other kernels (see tests/test_compat.py).
``oodscope demo`` writes no directory: its fixture is its printed AUROC table."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from oodscope.cli import cli
from oodscope.results import ResultsLog, load_scores, row_key, row_label

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v2"
DATA, OUT = "<data-root>", "<out>"  # placeholders of the fixture's own paths
TAIL = ["--data-root", DATA, "--no-download", "--no-progress", "--threads", "1", "--no-disk-cache", "--out", OUT]

# the exact commands that wrote the fixtures (oodscope at d609c8e), as recorded in their run files
COMMANDS: dict[str, list[str]] = {
    "grid": ["bench", "--dataset", "digits", "--oe", "digits", "--classes", "0", "--methods", "geom,layers,bce",
             "--n-oe", "4", "--seeds", "0", "--preset", "smoke", "--set", "batch_size=64", *TAIL],
    "table3": ["bench", "--suite", "table3", "--dataset", "digits", "--oe", "digits", "--classes", "0", "--seeds", "0",
               "--preset", "smoke", "--set", "batch_size=64", *TAIL],
    "classifier": ["bench", "--suite", "classifier", "--protocol", "split-mnist", "--methods", "msp,mahalanobis",
                   "--seeds", "0", "--preset", "smoke", "--set", "batch_size=512", *TAIL],
    "calibration": ["bench", "--suite", "calibration", "--protocol", "split-mnist", "--methods",
                    "msp,temperature,mc-dropout", "--seeds", "0", "--preset", "smoke", "--set", "batch_size=512",
                    "--set", "passes=2", *TAIL],
    "robustness": ["bench", "--suite", "robustness", "--protocol", "split-mnist", "--preset", "smoke", "--seeds", "0",
                   *TAIL],
    "verification": ["bench", "--suite", "verification", "--protocol", "split-mnist", "--methods", "standard",
                     "--preset", "smoke", "--seeds", "0", *TAIL],
    "stress": ["bench", "--suite", "stress", "--dataset", "mnist", "--classes", "0", "--seeds", "0",
               "--preset", "smoke", *TAIL],
    "demo": ["demo", "--classes", "0", "--no-progress", "--threads", "1"],
}
DIRECTORIES = [k for k in COMMANDS if k != "demo"]  # the kinds that write a results directory
STRESS_GRIDS = [f"mnist--{s}" for s in ("emnist-letters", "digits-28", "synthetic-noise", "synthetic-blobs",
                                        "synthetic-strokes")]
# what each kind's report shows besides every row's label
REPORT_TEXT = {"grid": ["roc_digits.png"], "table3": ["Table 3: per-class AUROC", "fig3_class0.png"],
               "classifier": ["roc_split-mnist.png"], "calibration": ["reliability_seed0.png"],
               "robustness": ["Transfer success"], "verification": ["Certified accuracy", "Neuron coverage"],
               "stress": ["synthetic-strokes"]}
# files that a run writes the same every time (the other tables show timings)
REPRODUCIBLE = {"table3": ["table.csv"], "stress": ["table.md"]}
# the note under a paper suite's compute table named run.json until experiment.json became the one record
# file; otherwise the tables are drawn again exactly as the fixture's
NOTE = ("their commands are in run.json (and merges.json for cells merged in from other directories)",
        "their commands are in experiment.json (and merges.json for cells merged in from other directories)")
# the section of experiment.json a rerun writes, in place of the fixture's own record file
SECTION = {"grid": "grid", "table3": "paper_suite", "classifier": "grid", "calibration": "grid",
           "robustness": "measured", "verification": "measured"}
# the figures --tables-only draws (the calibration suite's reliability diagram is drawn by its run only)
FIGURES = {"grid": ["roc_digits.png", "hist_digits.png"],
           "table3": ["roc_digits.png", "hist_digits.png", "fig3_class0.png"],
           "classifier": ["roc_split-mnist.png", "hist_split-mnist.png"],
           "calibration": ["roc_split-mnist.png", "hist_split-mnist.png"], "robustness": [], "verification": []}
# the tables --tables-only draws again from the rows alone (a grid suite's table.md: from summary.md)
TABLES = ["table.md", "table.csv"]


def argv(kind: str, out: Path, data_root: Path | str) -> list[str]:
    return [{DATA: str(data_root), OUT: str(out)}.get(a, a) for a in COMMANDS[kind]]


def volatile(key: str) -> bool:
    """Fields that differ between two runs of one command: timings, timestamps, versions, and the
    source a merged row came from."""
    return (key in ("timestamp", "oodscope_version", "torch_version", "merged_from")
            or key.endswith("_seconds") or key.startswith("seconds_"))


def outliers_given(row: dict[str, Any]) -> dict[str, Any]:
    """Since 0.3 ``n_outliers`` counts the outliers a detector was given: 0 for one that uses none
    (rows written before counted the cell's outliers whether the detector used them or not)."""
    from oodscope.detectors import detector_class

    return {} if "n_outliers" not in row or detector_class(row["method"]).requires.outliers else {"n_outliers": 0}


def stable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: stable(v) for k, v in x.items() if not volatile(k)}
    if isinstance(x, list):
        return [stable(v) for v in x]
    return x


def grids(directory: Path) -> list[Path]:
    """The results directories of a run: the stress grid writes one per outlier source."""
    return [directory / g for g in STRESS_GRIDS] if directory.name == "stress" else [directory]


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def drawn_now(table: str) -> str:
    """A table of the fixture as it is drawn today (see :data:`NOTE`)."""
    return table.replace(*NOTE)


def raw_rows(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text(directory / "results.jsonl").splitlines()]


def score_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((directory / "scores").glob("*"))}


# outputs an experiment keeps beside the scores since the experiment abstraction (the calibration
# suite's logits and the test images' classes, for its reliability diagrams drawn without fitting)
KEPT = {"calibration": {"logits", "test_class"}}


def assert_same_scores(new: Path, old: Path, kind: str = "") -> None:
    """The same score files, byte for byte (numpy writes fixed zip dates); on a difference, say which
    arrays differ. A kind that now keeps outputs beside its scores (:data:`KEPT`) has every array of
    the old file, identical, plus those."""
    mine, theirs = score_files(new), score_files(old)
    assert sorted(mine) == sorted(theirs)
    for name in theirs:
        if mine[name] != theirs[name] and KEPT.get(kind):
            with np.load(new / "scores" / name) as a, np.load(old / "scores" / name) as b:
                assert set(a.files) == set(b.files) | KEPT[kind], name
                for k in b.files:
                    assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), (name, k)
                assert len(a["logits"]) == len(a["scores"]) and np.array_equal(a["test_class"] >= 0, ~a["is_ood"])
        elif mine[name] != theirs[name]:
            with np.load(new / "scores" / name) as a, np.load(old / "scores" / name) as b:
                arrays = {k: (a[k].dtype, a[k].shape) for k in a.files}, {k: (b[k].dtype, b[k].shape) for k in b.files}
                equal = arrays[0] == arrays[1] and all(np.array_equal(a[k], b[k]) for k in b.files)
            pytest.fail(f"{name} differs from the fixture's: arrays (dtype, shape) {arrays[0]} != {arrays[1]}"
                        if arrays[0] != arrays[1] else f"{name} differs from the fixture's (same arrays: {equal})")


def invoke(args: list[str]):
    return CliRunner().invoke(cli, args)


@pytest.fixture
def fixture_copy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A writable copy of the kind's fixture directory (named as the kind)."""
    kind = request.param
    shutil.copytree(FIXTURES / kind, tmp_path / kind)
    return tmp_path / kind


def test_every_kind_has_a_fixture_made_by_its_command() -> None:
    """The fixtures are complete and each was written by the command this file reruns."""
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(COMMANDS)
    commands_md = text(FIXTURES / "COMMANDS.md")
    assert "d609c8e" in commands_md
    for kind in DIRECTORIES:
        records = [p for p in (FIXTURES / kind).rglob("*.json") if p.name != "merges.json"]
        recorded = [json.loads(text(p))["command"] for p in records]
        assert recorded and len(recorded) == (len(STRESS_GRIDS) if kind == "stress" else 1 + (kind == "table3"))
        for command in recorded:
            data, out = command[command.index("--data-root") + 1], command[command.index("--out") + 1]
            assert Path(out).name == kind
            assert [{data: DATA, out: OUT}.get(a, a) for a in command] == ["oodscope", *COMMANDS[kind]], kind
            assert " ".join(command) in commands_md, kind
        for d in grids(FIXTURES / kind):
            rows = raw_rows(d)
            assert rows and all(r["schema"] == 2 for r in rows)
            assert sorted(r["scores_file"] for r in rows if r.get("scores_file")) == \
                [f"scores/{n}" for n in score_files(d)]
    assert "AUROC (%)" in text(FIXTURES / "demo" / "stdout.txt")


@pytest.mark.parametrize("fixture_copy", DIRECTORIES, indirect=True)
def test_tables_rebuild_unchanged_and_the_report_shows_every_row(fixture_copy: Path, tmp_path: Path) -> None:
    d, kind = fixture_copy, fixture_copy.name
    if kind != "stress":  # the stress table is drawn by its run only (no results.jsonl of its own)
        for name in TABLES:
            if (d / name).exists():
                (d / name).write_text("stale", encoding="utf-8")
        for name in FIGURES[kind]:
            (d / name).unlink(missing_ok=True)
        r = invoke(["bench", "--tables-only", "--out", str(d)])
        assert r.exit_code == 0, r.output
        for name in FIGURES[kind]:
            assert (d / name).stat().st_size > 1000, name
        for name in TABLES:  # drawn from the fixture's rows: exactly the fixture's
            if (FIXTURES / kind / name).exists():
                assert text(d / name) == drawn_now(text(FIXTURES / kind / name)), name
    out = tmp_path / "report.html"
    r = invoke(["report", *map(str, grids(d)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    page = text(out)
    for g in grids(d):
        for row in ResultsLog(g / "results.jsonl").rows():
            assert html.escape(row_label(row)) in page, row_label(row)
    for snippet in REPORT_TEXT[kind]:
        assert snippet in page, snippet


# at d609c8e merge refused a robustness directory on its own: the detectors' rows (method msp) on the
# standard and on the adversarially trained classifier differ in the classifier's settings, which merge
# compared per method; a measurement suite's experiment now says its rows follow its plan instead


@pytest.mark.parametrize("fixture_copy", DIRECTORIES, indirect=True)
def test_merge_into_an_empty_directory_copies_every_cell(fixture_copy: Path, tmp_path: Path) -> None:
    kind = fixture_copy.name
    for src in grids(fixture_copy):
        dest = tmp_path / "merged" / src.name
        r = invoke(["merge", str(src), "--into", str(dest)])
        assert r.exit_code == 0, r.output
        mine, theirs = raw_rows(dest), raw_rows(src)
        assert [m.pop("merged_from") for m in mine] == [str(src.resolve())] * len(theirs)
        assert mine == theirs  # the rows as the source wrote them
        assert {row_key(x) for x in ResultsLog(dest / "results.jsonl").rows()} == \
            {row_key(x) for x in ResultsLog(src / "results.jsonl").rows()}
        assert score_files(dest) == score_files(src)
        for row in ResultsLog(dest / "results.jsonl").rows():
            a, b = load_scores(dest, row), load_scores(src, row)
            assert (a is None) == (b is None) == (not row.get("scores_file"))
            if a is not None:
                assert all(np.array_equal(a[k], b[k]) for k in ("scores", "is_ood", "labels"))
        merges = json.loads(text(dest / "merges.json"))["merges"]
        assert [(m["source"], m["cells_added"]) for m in merges] == [(str(src.resolve()), len(theirs))]
        # the destination's one record file: the experiment, and a measurement suite's plan, which comes along
        assert sorted(p.name for p in dest.glob("*.json")) == ["experiment.json", "merges.json"]
        record = json.loads(text(dest / "experiment.json"))
        assert record["command"] is None and record["schema"] == 2
        for plan in ("robustness.json", "verification.json"):
            if (src / plan).is_file():
                assert (record["kind"], record["suite"]) == (kind, kind)
                assert record["measured"] == json.loads(text(src / plan))
                assert text(dest / "table.md") == text(FIXTURES / kind / "table.md")
        # the summary of the same rows; a merge knows no planned cells: "Finished cells: N" without "of N"
        n = len(theirs)
        assert text(dest / "summary.md") == text(src / "summary.md").replace(f"Finished cells: {n} of {n}.",
                                                                            f"Finished cells: {n}.")


@pytest.mark.parametrize("fixture_copy", DIRECTORIES, indirect=True)
def test_rerunning_the_command_resumes_with_nothing_to_run(fixture_copy: Path, data_root: Path) -> None:
    d, kind = fixture_copy, fixture_copy.name
    before = {g: ((g / "results.jsonl").read_bytes(), score_files(g)) for g in grids(d)}
    tables = {name: drawn_now(text(d / name)) for name in ("table.md", "table.csv") if (d / name).exists()}
    r = invoke(argv(kind, d, data_root))
    assert r.exit_code == 0, r.output
    n = sum(len(raw_rows(g)) for g in grids(d))
    if kind in ("robustness", "verification"):
        assert f"0 of {n} measurements" in r.output
    elif kind == "stress":
        assert r.output.count("already finished") == len(STRESS_GRIDS)
    else:
        assert f"all {n} cells already finished" in r.output
    assert {g: ((g / "results.jsonl").read_bytes(), score_files(g)) for g in grids(d)} == before
    files = sorted(p.relative_to(FIXTURES / kind) for p in (FIXTURES / kind).rglob("*") if p.is_file())
    assert [f for f in files if not (d / f).is_file()] == []  # figures, records: none lost
    record = json.loads(text(d / "experiment.json"))  # the rerun's record: the experiment and what it ran
    assert record["suite"] == (None if kind == "grid" else kind) and record["history"] == []
    for g in grids(d) if kind == "stress" else []:  # each grid of the stress run: its section, in its own record
        assert json.loads(text(g / "experiment.json"))["grid"]["history"][0]["command"] == \
            json.loads(text(g / "run.json"))["command"]
    if kind in SECTION:  # the section the rerun wrote, with what the fixture's own file recorded as its history
        old = next(json.loads(text(d / f)) for f in ("suite.json", "run.json", f"{kind}.json") if (d / f).is_file())
        section = record[SECTION[kind]]
        if SECTION[kind] == "measured":  # the plan, rewritten by each run
            assert (section["suite"], section["plan"]) == (kind, old["plan"])
        else:
            assert section["history"][0]["command"] == old["command"]
    for name, drawn in tables.items():  # drawn again from the same rows
        assert text(d / name) == drawn, name


# a fresh run of these takes 6-45 s on 2 cores: in the slow run (each kind runs end to end in the default
# run elsewhere: test_adversarial, test_stress, test_ensemble, test_classifier_detectors, test_verify_suite)
SLOW_RERUN = {"robustness", "stress", "calibration", "classifier", "verification"}


def cpu_kind() -> tuple[str, bool, bool]:
    """torch's CPU kernels and whether the CPU has AVX-512 BF16 and AMX: what bfloat16 training rounds with."""
    import torch

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return torch.backends.cpu.get_cpu_capability(), "avx512_bf16" in flags, "amx_bf16" in flags


# the fixtures' machine (see COMMANDS.md): elsewhere bfloat16 training rounds otherwise and the numbers move
SAME_CPU = pytest.mark.skipif(cpu_kind() != ("AVX512", True, False),
                              reason="the fixtures were written on an AVX-512 BF16 CPU without AMX; bfloat16 "
                                     "training rounds otherwise on this one")


@SAME_CPU
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k in SLOW_RERUN else k for k in DIRECTORIES])
def test_the_same_command_in_a_fresh_directory_gives_the_same_rows_and_scores(kind: str, tmp_path: Path,
                                                                               data_root: Path) -> None:
    fresh = tmp_path / kind
    r = invoke(argv(kind, fresh, data_root))
    assert r.exit_code == 0, r.output
    for old, new in zip(grids(FIXTURES / kind), grids(fresh), strict=True):
        old_rows, new_rows = raw_rows(old), raw_rows(new)
        assert len(new_rows) == len(old_rows)
        for a, b in zip(old_rows, new_rows):
            assert stable(b) == stable(a) | outliers_given(a), row_label(a)
        assert_same_scores(new, old, kind)
    for name in REPRODUCIBLE.get(kind, []):
        assert text(fresh / name) == text(FIXTURES / kind / name)


@SAME_CPU
@pytest.mark.slow
def test_the_demo_prints_the_same_table() -> None:
    """``oodscope demo`` writes nothing (and reads only scikit-learn's bundled digits): the fixture is
    what it printed. Every method it ran then has the same AUROC per class now (detectors registered
    since add columns; the seconds differ)."""
    r = invoke(COMMANDS["demo"])
    assert r.exit_code == 0, r.output

    def table(printed: str) -> dict[tuple[str, str], str]:
        lines = printed.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("class "))
        methods = lines[start].split()[1:]
        rows = [line.split() for line in lines[start + 1:] if line.split() and not line.startswith(("secs ", "finished"))]
        return {(row[0], m): v for row in rows for m, v in zip(methods, row[1:])}

    expected = table(text(FIXTURES / "demo" / "stdout.txt"))
    assert ("mean", "layers") in expected and len(expected) > 20
    now = table(r.stdout)
    assert {k: now.get(k) for k in expected} == expected
