"""Tests of oodscope.figures and the per-cell score files, on hand-made results (no training)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from helpers import one_class_cell, result_row

from oodscope.bench import suite_cells
from oodscope.bench.paper.files import record_suite
from oodscope.bench.paper.suites import make_spec as _make_spec
from oodscope.cli import cli
from oodscope.data import load
from oodscope.errors import DataError
from oodscope.figures import fig3_selection, plot_fig3, plot_sweep, rebuild_outputs, write_figures, youden_threshold
from oodscope.metrics import auroc
from oodscope.protocols import Cell
from oodscope.results import ResultsLog, load_scores, save_scores

LABELS = load("digits", "test").labels


def make_spec(*args, **kw):
    return _make_spec(*args, unsupervised=["geom"], **kw)


def fake_run(directory: Path, cells: list[Cell], suite: bool = True, spec=None, seed: int = 0) -> None:
    """Rows (AUROC from synthetic scores) and score files for ``cells``, as a finished run leaves them."""
    directory.mkdir(parents=True, exist_ok=True)
    if suite:
        record_suite(spec, directory, None, None, {}, ["test"])
    rng = np.random.default_rng(seed)
    log = ResultsLog(directory / "results.jsonl")
    for cell in cells:
        is_ood = LABELS != cell["id_class"]
        scores = is_ood * rng.uniform(0.5, 2.0) + rng.normal(size=len(LABELS))
        rel = save_scores(directory, cell.row_fields(), scores, is_ood, LABELS)
        log.append({**result_row(cell, auroc=100 * auroc(scores, is_ood)), "scores_file": rel})


def assert_png(path: Path, min_w: int = 200, min_h: int = 150) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_w and im.size[1] >= min_h, im.size
        im.verify()


def test_agg_backend() -> None:
    assert matplotlib.get_backend().lower() == "agg"


def test_scores_roundtrip_without_pickle(tmp_path: Path) -> None:
    cell = one_class_cell("geom+", 3, 16, seed=1, variant={"taps": ["z1", "z2"]})
    rel = save_scores(tmp_path, cell.row_fields(), np.arange(4.0), [0, 1, 1, 0], np.array([3, 1, 2, 3]))
    assert rel.startswith("scores/") and rel.endswith(".npz") and "+" not in rel
    a = load_scores(tmp_path, {"scores_file": rel})
    assert a["scores"].dtype == np.float32 and a["is_ood"].dtype == bool and a["labels"].dtype == np.int64
    assert a["is_ood"].tolist() == [False, True, True, False] and a["labels"].tolist() == [3, 1, 2, 3]
    assert load_scores(tmp_path, {"scores_file": "scores/none.npz"}) is None and load_scores(tmp_path, {}) is None
    bad = tmp_path / "scores" / "bad.npz"
    np.savez(bad, scores=np.array([object()], dtype=object), is_ood=np.zeros(1, bool), labels=np.zeros(1, np.int64))
    with pytest.raises(DataError, match="not a valid scores file"):
        load_scores(tmp_path, {"scores_file": "scores/bad.npz"})


def test_sweep_figures(tmp_path: Path, monkeypatch) -> None:
    import oodscope.figures.sweeps as sweeps

    titles = []
    real_save = sweeps.save_png
    monkeypatch.setattr(sweeps, "save_png", lambda fig, path: titles.append(fig.axes[0].get_title()) or real_save(fig, path))
    spec4 = make_spec("fig4", "digits", "smoke", 10, oe_dataset="digits", classes=[0, 1], n_oe=[2, 4, 8])
    fake_run(tmp_path / "f4", suite_cells(spec4), spec=spec4)
    (path,) = plot_sweep(tmp_path / "f4")
    assert path.name == "fig4.png"
    assert_png(path, 500, 350)
    spec5 = make_spec("fig5", "digits", "smoke", 10, oe_dataset="digits", classes=[0], seeds=[0, 1], n_oe=[20])
    fake_run(tmp_path / "f5", [c for c in suite_cells(spec5) if c.seed == 0 or c.method == "layers"], spec=spec5)
    assert [p.name for p in plot_sweep(tmp_path / "f5")] == ["fig5.png"]
    assert_png(tmp_path / "f5" / "fig5.png", 500, 350)
    assert "over 3 of 3 seeds" in titles[0] and "over 1–2 of 2 seeds" in titles[1]  # layers has seed 1 too
    empty = make_spec("fig4", "digits", "smoke", 10, oe_dataset="digits")
    fake_run(tmp_path / "e", [], spec=empty)
    assert_png(plot_sweep(tmp_path / "e")[0], 500, 350)  # nothing finished: an empty, labelled plot
    assert "seeds" not in titles[2]
    spec3 = make_spec("table3", "digits", "smoke", 10, oe_dataset="digits", classes=[0])
    fake_run(tmp_path / "t3", [], spec=spec3)
    assert plot_sweep(tmp_path / "t3") == []


def test_suite_figures_roc_hist_fig3(tmp_path: Path) -> None:
    spec = make_spec("table3", "digits", "smoke", 10, oe_dataset="digits", classes=[0, 5, 8])
    fake_run(tmp_path, suite_cells(spec), spec=spec)
    paths = rebuild_outputs(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["fig3_class0.png", "fig3_class8.png", "hist_digits.png", "roc_digits.png", "table.csv", "table.md"]
    assert_png(tmp_path / "roc_digits.png", 600, 250)
    assert_png(tmp_path / "hist_digits.png", 600, 400)
    assert_png(tmp_path / "fig3_class0.png", 100, 100)
    assert "| 5 |" in (tmp_path / "table.md").read_text()


def test_figures_of_plain_grid_and_tables_only(tmp_path: Path) -> None:
    cells = [one_class_cell(m, c, variant=t) for c in (1, 2) for m, t in (("geom", None), ("layers", {"taps": ["z4"]}))]
    fake_run(tmp_path, cells, suite=False)
    assert sorted(p.name for p in write_figures(tmp_path)) == ["hist_digits.png", "roc_digits.png"]
    r = CliRunner().invoke(cli, ["bench", "--tables-only", "--out", str(tmp_path)], catch_exceptions=False)
    assert r.exit_code == 0 and "roc_digits.png" in r.stdout
    r = CliRunner().invoke(cli, ["bench", "--tables-only", "--suite", "fig4", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "holds grid results, not --suite fig4" in r.stderr


def test_fig3_selection_and_thresholds() -> None:
    is_ood = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    geom = {"scores": np.array([0.1, 0.2, 0.9, 0.95, 0.5, 0.6, 0.7, 0.8]), "is_ood": is_ood}
    layers = {"scores": np.array([0.0, 0.0, 0.1, 0.9, 0.5, 0.6, 0.7, 0.8]), "is_ood": is_ood}
    assert youden_threshold(geom["scores"], is_ood) == pytest.approx(0.5)
    rejected, shown, verdict_in = fig3_selection(geom, layers)
    assert rejected.tolist() == [3, 2] and shown.tolist() == [3, 2]  # most OOD first
    assert verdict_in.tolist() == [False, True]
    assert fig3_selection(geom, layers, max_tiles=1)[1].tolist() == [3]


def test_fig3_skips_mismatched_test_set(tmp_path: Path) -> None:
    cells = [one_class_cell(m, 0) for m in ("geom", "layers")]
    tmp_path.mkdir(exist_ok=True)
    log = ResultsLog(tmp_path / "results.jsonl")
    for cell in cells:  # scores of another test set: 10 images
        rel = save_scores(tmp_path, cell.row_fields(), np.arange(10.0), np.arange(10) % 2 == 0, np.arange(10))
        log.append({**result_row(cell, auroc=50.0), "scores_file": rel})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plot_fig3(tmp_path) == []
    assert any("do not match" in str(w.message) for w in caught)


def test_histograms_of_many_methods_on_one_benchmark_wrap_onto_rows() -> None:
    from oodscope.figures.curves import WRAP, hist_figure

    rng = np.random.default_rng(0)
    is_ood = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    scored = {("split-mnist", None, f"m{k}"): (None, {"scores": rng.normal(size=100) + is_ood, "is_ood": is_ood})
              for k in range(WRAP + 2)}
    fig = hist_figure(scored, "split-mnist")
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == WRAP + 2 and len(fig.axes) == 2 * WRAP  # two rows, the unused panels hidden
    assert [ax.get_title() for ax in visible] == [f"m{k}" for k in range(WRAP + 2)]
