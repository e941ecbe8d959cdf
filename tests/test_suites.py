"""Tests of the benchmark suites: cell lists, tables from hand-written results, a tiny real run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from oodscope.bench import make_spec, rebuild_tables, suite_cells
from oodscope.bench.paper.tables import render
from oodscope.bench.paper.suites import SUITES
from oodscope.cli import cli
from oodscope.errors import InputError
from oodscope.protocols import Cell
from oodscope.results import ResultsLog, row_key

torch.set_num_threads(1)

SMOKE = ["--preset", "smoke", "--set", "progress=false", "--set", "batch_size=64", "--threads", "1", "--no-progress"]


UNSUPERVISED = ["geom"]


def spec_of(*args, **kw):
    """make_spec with the unsupervised methods the CLI passes (those without outliers)."""
    return make_spec(*args, unsupervised=UNSUPERVISED, **kw)


def row(cell: Cell, auroc: float) -> dict:
    """A results row as the runner writes it, reduced to what tables read."""
    return {"schema": 2, **cell.row_fields(), "metrics": {"auroc": auroc}}


def v1_row(cell: Cell, auroc: float, **extra) -> dict:
    """The same row as oodscope wrote it before results had a schema version."""
    taps = cell.variant_settings
    return {"dataset": cell.dataset, "method": cell.method, "taps_variant": taps["taps"] if taps else None,
            "seed": cell.seed, "preset": cell.preset, **dict(cell.fields), "auroc": auroc, **extra}


def md_table(text: str, heading: str) -> dict[str, list[str]]:
    """The markdown table under ``## heading`` as {first cell: other cells}, header under 'header'."""
    lines = text.split(f"## {heading}\n", 1)[1].strip().splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("|")):]  # skip a preamble
    out = {}
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            break
        if i == 1:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        out["header" if i == 0 else cells[0]] = cells[1:]
    return out


# -- cell lists -----------------------------------------------------------------------------------
def test_suite_cell_counts() -> None:
    counts = {name: len(suite_cells(spec_of(name, "mnist", "cpu", 10))) for name in SUITES}
    # table2: 10 classes x (geom + 7 layers taps variants); table3: 10 x 4 methods
    # fig4: 3 seeds x 10 classes x (1 geom + 4 n_oe x 3 methods); fig5: 3 x 10 x (1 + 5 k x 3)
    assert counts == {"table2": 80, "table3": 40, "fig4": 390, "fig5": 480}
    for name in SUITES:
        cells = suite_cells(spec_of(name, "mnist", "cpu", 10))
        assert len({c.key() for c in cells}) == len(cells)  # no duplicates
        geoms = [c for c in cells if c.method == "geom"]
        assert all(c["n_oe"] == 0 for c in geoms)  # unsupervised: one cell per (class, seed), never per budget
        assert len(geoms) == len({(c["id_class"], c.seed) for c in geoms}) == 10 * len(SUITES[name].seeds)


def test_suite_cells_contents() -> None:
    t2 = suite_cells(spec_of("table2", "mnist", "paper", 10))
    assert Counter(c.label for c in t2 if c.method == "layers") == Counter(
        {f"layers[{t}]": 10 for t in ["softmax", "z4", "z3", "z2", "z1", "z1+z2+z3+z4", "z3+z4+ptrue"]})
    assert {(c["n_oe"], c["oe_dataset"], c.seed) for c in t2 if c.method == "layers"} == {("all", "emnist-letters", 0)}
    f4 = suite_cells(spec_of("fig4", "cifar10", "cpu", 10))
    assert {c["oe_dataset"] for c in f4} == {"cifar100"}
    assert Counter(c["n_oe"] for c in f4 if c.method != "geom") == Counter({16: 90, 64: 90, 256: 90, 1024: 90})
    assert [c.seed for c in f4[:13]] == [0] * 13
    assert (f4[0].method, f4[0]["id_class"], f4[0]["n_oe"], f4[0]["oe_classes"]) == ("geom", 0, 0, "all")
    assert [c.seed for c in f4] == sorted(c.seed for c in f4)  # seed-major: seed 0 completes first
    f5 = suite_cells(spec_of("fig5", "mnist", "cpu", 10))
    assert {c["n_oe"] for c in f5 if c.method != "geom"} == {500}
    assert Counter(c["oe_classes"] for c in f5 if c.method != "geom") == Counter({1: 90, 2: 90, 5: 90, 10: 90, "all": 90})


def test_suite_overrides_and_errors() -> None:
    spec = spec_of("fig4", "digits", "smoke", 10, oe_dataset="digits", classes=[0, 8], seeds=[0], n_oe=[4, 8],
                     methods=["geom", "layers"])
    cells = suite_cells(spec)
    assert [(c.method, c["id_class"], c["n_oe"]) for c in cells] == [
        ("geom", 0, 0), ("layers", 0, 4), ("layers", 0, 8), ("geom", 8, 0), ("layers", 8, 4), ("layers", 8, 8)]
    with pytest.raises(InputError, match="--oe"):
        spec_of("table3", "digits", "cpu", 10)
    with pytest.raises(InputError, match="not in the suite"):
        spec_of("table2", "mnist", "cpu", 10, methods=["bce"])
    with pytest.raises(InputError, match="single value for --n-oe"):
        spec_of("fig5", "mnist", "cpu", 10, n_oe=[100, 500])
    with pytest.raises(InputError, match="0..9"):
        spec_of("table3", "mnist", "cpu", 10, classes=[12])
    with pytest.raises(InputError, match="unknown suite"):
        spec_of("table9", "mnist", "cpu", 10)


# -- tables from hand-written results -----------------------------------------------------------------
def test_table2_from_rows() -> None:
    spec = spec_of("table2", "mnist", "cpu", 10, classes=[0, 1])
    cells = {(c.label, c["id_class"]): c for c in suite_cells(spec)}
    rows = [row(cells[("geom", 0)], 90.0), row(cells[("geom", 1)], 80.0),
            row(cells[("layers[z3]", 0)], 99.0),
            row(cells[("layers[z3+z4+ptrue]", 0)], 97.0), row(cells[("layers[z3+z4+ptrue]", 1)], 95.0),
            {**row(cells[("geom", 0)], 10.0), "preset": "paper"}]  # another grid: ignored
    md, csv_text = render(spec, rows)
    main = md_table(md, "Mean AUROC over classes")
    assert main["header"] == ["mnist (oodscope)", "mnist (paper)"]
    assert main["GEOM"] == ["85.00", "92.6"]
    assert main["OURS(z3)"] == ["99.00 (1/2)", "98.5"]  # only class 0 finished
    assert main["OURS(z1..z4)"] == ["–", "98.0"]
    assert main["oodscope default layers (z3+z4+ptrue)"] == ["96.00", "–"]
    assert list(main)[1:] == ["GEOM", "OURS(softmax)", "OURS(z4)", "OURS(z3)", "OURS(z2)", "OURS(z1)", "OURS(z1..z4)",
                              "oodscope default layers (z3+z4+ptrue)"]
    detail = md_table(md, "Per class")
    assert detail["1"][:4] == ["80.00", "–", "–", "–"]
    assert "Finished cells: 5 of 16" in md
    assert csv_text.splitlines()[1] == "GEOM,85.00,92.6"


def test_table3_from_rows() -> None:
    spec = spec_of("table3", "cifar10", "cpu", 10, classes=[0, 3])
    cells = {(c.method, c["id_class"]): c for c in suite_cells(spec)}
    rows = [row(cells[("geom", 0)], 70.0), row(cells[("geom", 3)], 80.0), row(cells[("layers", 3)], 88.0)]
    md, csv_text = render(spec, rows)
    t = md_table(md, "AUROC per class")
    assert t["header"] == ["GEOM", "GEOM (paper)", "GEOM+", "GEOM+ (paper)", "BCE", "BCE (paper)",
                           "ours (layers)", "ours (paper)"]
    assert t["plane"] == ["70.00", "79.9", "–", "68.0", "–", "96.3", "–", "95.4"]
    assert t["cat"] == ["80.00", "79.3", "–", "81.3", "–", "89.2", "88.00", "87.6"]
    assert t["mean"] == ["75.00", "89.0", "–", "88.6", "–", "95.7", "88.00 (1/2)", "95.6"]
    assert "cifar100" in md and "80 Million" in md
    assert csv_text.splitlines()[0].startswith("class,GEOM,GEOM (paper)")


def test_fig4_mean_std_over_seeds() -> None:
    spec = spec_of("fig4", "mnist", "cpu", 10, classes=[0, 1], seeds=[0, 1, 2])
    rows, rng = [], np.random.default_rng(0)
    per_seed: dict[tuple[str, int], list[float]] = {}
    for c in suite_cells(spec):
        if c.method == "bce" or (c.method == "layers" and c["n_oe"] == 64 and c.seed == 2 and c["id_class"] == 1):
            continue  # bce never ran; one class of seed 2 missing at n_oe 64
        v = float(rng.uniform(60, 100))
        rows.append(row(c, v))
        per_seed.setdefault((c.label, c["n_oe"], c.seed), []).append(v)
    md, csv_text = render(spec, rows)
    t = md_table(md, "Class-averaged AUROC, mean ± std over seeds")
    assert t["header"] == ["GEOM", "GEOM+", "BCE", "layers (ours)"]
    assert list(t)[1:] == ["16", "64", "256", "1024"]

    def stat(label: str, n: int, seeds: list[int]) -> str:
        means = [np.mean(per_seed[(label, n, s)]) for s in seeds]
        return f"{np.mean(means):.2f} ± {np.std(means):.2f}"

    assert t["16"][3] == stat("layers", 16, [0, 1, 2])
    assert t["64"][3] == stat("layers", 64, [0, 1]) + " (2/3 seeds)"
    assert t["256"][1] == stat("geom+", 256, [0, 1, 2])
    assert all(t[n][2] == "–" for n in ("16", "64", "256", "1024"))
    assert len({t[n][0] for n in ("16", "64", "256", "1024")}) == 1 and t["16"][0] == stat("geom", 0, [0, 1, 2])
    assert csv_text.splitlines()[0] == "n_oe,GEOM,GEOM+,BCE,layers (ours)"
    per = md_table(md, "Per seed: class-averaged AUROC (k/N: only k of the N classes finished)")
    assert per["header"] == ["n_oe", "GEOM", "GEOM+", "BCE", "layers (ours)"]
    lines = [line for line in md.split("## Per seed", 1)[1].splitlines() if line.startswith("| 2 | 64 |")]
    assert lines and lines[0].split("|")[6].strip() == f"{per_seed[('layers', 64, 2)][0]:.2f} (1/2)"


def test_fig5_table_rows_are_outlier_classes() -> None:
    spec = spec_of("fig5", "mnist", "cpu", 10, classes=[0], seeds=[0])
    rows = [row(c, 90.0 if c["oe_classes"] == 1 else 95.0) for c in suite_cells(spec) if c.method == "layers"]
    t = md_table(render(spec, rows)[0], "Class-averaged AUROC, mean ± std over seeds")
    assert list(t)[1:] == ["1", "2", "5", "10", "all"]
    assert t["1"] == ["–", "–", "–", "90.00 ± 0.00"] and t["all"][3] == "95.00 ± 0.00"


@pytest.mark.parametrize("schema", [1, 2])
def test_compute_time_counts_a_shared_f_once(schema: int) -> None:
    """geom trained f (20 s) and scored (10 s); layers reused that f, trained its head for 11 s and
    scored for 14 s; bce has no upstream. Rows as written before the schema (1) and now (2)."""
    from oodscope.results import normalize

    spec = spec_of("table3", "mnist", "cpu", 10, classes=[0])
    cells = {c.method: c for c in suite_cells(spec)}
    if schema == 1:
        rows = [v1_row(cells["geom"], 90.0, fit_seconds=20.0, base_fit_seconds=20.0, score_seconds=10.0, shared_base=False),
                v1_row(cells["layers"], 99.0, fit_seconds=31.0, base_fit_seconds=20.0, score_seconds=14.0, shared_base=True),
                v1_row(cells["bce"], 95.0, fit_seconds=60.0, score_seconds=65.0, shared_base=False)]
        rows = [normalize(r) for r in rows]
    else:
        up = {"kind": "geom-f", "key": "abc", "fit_seconds": 20.0}
        rows = [{**row(cells["geom"], 90.0), "fit_seconds": 20.1, "score_seconds": 9.9, "upstream": {**up, "reused": False}},
                {**row(cells["layers"], 99.0), "fit_seconds": 31.0, "score_seconds": 14.0, "upstream": {**up, "reused": True}},
                {**row(cells["bce"], 95.0), "fit_seconds": 60.0, "score_seconds": 65.0, "upstream": None}]
    t = md_table(render(spec, rows)[0], "Compute time")
    assert t["GEOM"] == ["1", "30 s"]
    assert t["layers (ours)"] == ["1", "25 s"]
    assert t["BCE"] == ["1", "2 min 05 s"]
    assert t["total"] == ["3", "3 min 00 s"]
    assert "GEOM+" not in t  # never ran


# -- a tiny real run --------------------------------------------------------------------------------------
def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_suite_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "t3"
    args = ["bench", "--suite", "table3", "--dataset", "digits", "--oe", "digits", "--classes", "0,1",
            "--out", str(out), *SMOKE]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    results = out / "results.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert len(rows) == 8 and Counter(x["method"] for x in rows) == Counter({"geom": 2, "geom+": 2, "bce": 2, "layers": 2})
    for x in rows:
        with np.load(out / x["scores_file"], allow_pickle=False) as z:
            assert z["scores"].dtype == np.float32 and z["is_ood"].dtype == bool and z["labels"].dtype == np.int64
            assert len(z["scores"]) == x["n_test"] == 599
            assert np.array_equal(z["is_ood"], z["labels"] != x["protocol_fields"]["id_class"])
    assert not list((out / "scores").glob(".*.tmp"))
    md = (out / "table.md").read_text()
    t = md_table(md, "AUROC per class")
    assert t["0"][0] == f"{rows[0]['metrics']['auroc']:.2f}" and "–" not in t["0"][0::2]
    assert (out / "table.csv").read_text().splitlines()[0].startswith("class,GEOM")
    record = json.loads((out / "experiment.json").read_text())
    assert not [p.name for p in out.glob("*.json") if p.name != "experiment.json"]  # its one record file
    assert (record["kind"], record["suite"]) == ("paper-suite", "table3") and record["grid"]["cells"] == 8
    suite = record["paper_suite"]
    assert suite["suite"] == "table3" and suite["dataset"] == "digits" and suite["preset"] == "smoke"
    assert suite["spec"]["unsupervised"] == ["geom"]
    assert isinstance(suite["command"], list) and suite["spec"]["classes"] == [0, 1]
    for name in ("roc_digits.png", "hist_digits.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
    assert not (out / "fig3_class8.png").exists()  # class 8 not in this run

    # resume in suite mode: drop the last 3 rows, rerun, only they are recomputed
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:5]))
    r = invoke(*args)
    assert r.exit_code == 0 and "3 of 8 cells to run" in r.stderr
    new = results.read_text().splitlines(keepends=True)
    assert new[:5] == lines[:5] and len(new) == 8
    assert Counter(row_key(json.loads(x)) for x in new) == Counter(row_key(json.loads(x)) for x in lines)
    r = invoke(*args)
    assert r.exit_code == 0 and "already finished" in r.stderr and len(results.read_text().splitlines()) == 8

    # tables and figures rebuilt without training, a missing row shown as –
    results.write_text("".join(new[:7]))
    (out / "table.md").unlink()
    r = invoke("bench", "--tables-only", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert md_table((out / "table.md").read_text(), "AUROC per class")["1"][6] == "–"
    assert "Finished cells: 7 of 8" in (out / "table.md").read_text()
    assert rebuild_tables(out)[0].name == "table.md"


def test_suite_refuses_other_suite_and_taps(tmp_path: Path) -> None:
    out = tmp_path / "s"
    base = ["bench", "--dataset", "digits", "--oe", "digits", "--classes", "2", "--methods", "geom", "--out", str(out), *SMOKE]
    assert invoke(*base, "--suite", "table3").exit_code == 0
    r = invoke(*base, "--suite", "table2")
    assert r.exit_code == 2 and "holds suite table3" in r.stderr
    r = invoke(*base, "--suite", "table3", "--variant", "taps=z4")
    assert r.exit_code == 2 and "--variant" in r.stderr
    r = invoke(*base, "--suite", "table3", "--protocol", "split-mnist")
    assert r.exit_code == 2 and "one-class experiment" in r.stderr
    r = invoke("bench", "--suite", "table2", "--dataset", "digits", "--out", str(tmp_path / "x"), *SMOKE)
    assert r.exit_code == 2 and "--oe" in r.stderr


def test_fig3_from_real_digits_run(tmp_path: Path) -> None:
    out = tmp_path / "f3"
    r = invoke("bench", "--suite", "table3", "--dataset", "digits", "--oe", "digits", "--classes", "0,8",
               "--methods", "geom,layers", "--out", str(out), *SMOKE)
    assert r.exit_code == 0, r.output
    for c in (0, 8):
        with Image.open(out / f"fig3_class{c}.png") as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert f"wrote: {out / 'fig3_class8.png'}" in r.stdout
    assert len(ResultsLog(out / "results.jsonl").load()) == 4
