"""Regression uncertainty (Takahashi, "Deep learning: reliability of inference", University of Aizu
lecture notes, n.d., figs. 8.1-8.2): the toy data, the Gaussian NLL, a deep ensemble of
mean-variance networks (aleatoric vs epistemic variance), and the ``regression-uncertainty`` study."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from oodscope.calibration.regression import (
    MeanVarianceNet,
    ensemble_predict,
    fit_regressor,
    gaussian_nll,
    noise_std,
    toy_data,
)
from oodscope.studies import StudyOptions, run_study

torch.set_num_threads(1)


def test_gaussian_nll_is_the_normal_log_density_without_its_constant():
    g = torch.Generator().manual_seed(0)
    mu, s, y = torch.randn(50, generator=g), 3 * torch.randn(50, generator=g), torch.randn(50, generator=g)
    ref = -torch.distributions.Normal(mu, torch.exp(0.5 * s)).log_prob(y).mean() - 0.5 * math.log(2 * math.pi)
    assert torch.allclose(gaussian_nll(mu, s, y), ref, atol=1e-5)
    # minimised over s at s = log (y - mu)^2
    r = torch.tensor([0.3])
    best = min(np.linspace(-6, 2, 801), key=lambda v: float(gaussian_nll(torch.zeros(1), torch.tensor([v]), r)))
    assert best == pytest.approx(math.log(0.09), abs=0.02)


def test_toy_data_noise_grows_with_abs_x():
    x, y = toy_data(200_000, -2 * math.pi, 3 * math.pi, seed=1)
    assert x.shape == y.shape == (200_000,) and x.dtype == np.float64
    assert x.min() >= -2 * math.pi and x.max() < 3 * math.pi
    resid = y - np.sin(x)
    for lo, hi in [(-6.0, -5.0), (-1.0, -0.5), (0.5, 1.0), (3.0, 3.5), (6.0, 7.0), (8.5, 9.4)]:
        sel = (x >= lo) & (x < hi)
        expected = math.sqrt(np.mean(0.005 * x[sel] ** 2))  # the band's mean variance
        assert resid[sel].std() == pytest.approx(expected, rel=0.05), (lo, hi)
        assert abs(resid[sel].mean()) < 0.01
    assert noise_std(np.array([-2.0, 0.0, 4.0])) == pytest.approx([0.14142, 0.0, 0.28284], abs=1e-4)
    # the default range is the notes' 0 < x < 2 pi, and a seed reproduces the draw
    x0, y0 = toy_data(100, seed=3)
    assert 0 <= x0.min() and x0.max() < 2 * math.pi
    np.testing.assert_array_equal(toy_data(100, seed=3)[1], y0)


@pytest.fixture(scope="module")
def ensemble() -> list[MeanVarianceNet]:
    x, y = toy_data(400, seed=0)
    return [fit_regressor(x, y, seed=s, epochs=600, lr=1e-2) for s in range(3)]


def test_ensemble_aleatoric_matches_the_true_noise_inside_the_training_range(ensemble):
    g = np.linspace(0.5, 2 * math.pi - 0.1, 200)  # near x = 0 the true sd falls to 0
    p = ensemble_predict(ensemble, g)
    ratio = np.sqrt(p["aleatoric_var"]) / noise_std(g)
    assert 0.85 < np.median(ratio) < 1.15
    assert ratio.min() > 0.6 and ratio.max() < 1.5
    # the slope of the predicted sd against |x| is the true sqrt(0.005) ~ 0.0707 (a constant sd would fail)
    slope = np.polyfit(g, np.sqrt(p["aleatoric_var"]), 1)[0]
    assert slope == pytest.approx(math.sqrt(0.005), rel=0.3)
    assert np.sqrt(np.mean((p["mean"] - np.sin(g)) ** 2)) < 0.1


def test_ensemble_epistemic_variance_grows_outside_the_training_range(ensemble):
    inside = ensemble_predict(ensemble, np.linspace(0.2, 2 * math.pi - 0.2, 200))["epistemic_var"]
    left = ensemble_predict(ensemble, np.linspace(-math.pi, -1.0, 100))["epistemic_var"]
    right = ensemble_predict(ensemble, np.linspace(2 * math.pi + 1.0, 3 * math.pi, 100))["epistemic_var"]
    assert np.sqrt(left.mean()) > 5 * np.sqrt(inside.mean())
    assert np.sqrt(right.mean()) > 5 * np.sqrt(inside.mean())
    # the epistemic variance is the members' spread: mean_i mu_i^2 - mu*^2
    p = ensemble_predict(ensemble, np.array([-2.0, 1.0, 8.0]))
    np.testing.assert_allclose(p["epistemic_var"], (p["mus"] ** 2).mean(0) - p["mean"] ** 2, atol=1e-9)
    np.testing.assert_allclose(p["aleatoric_var"], p["vars"].mean(0))
    # a one-member "ensemble" has no epistemic variance
    assert np.all(ensemble_predict(ensemble[:1], np.array([-2.0, 8.0]))["epistemic_var"] == 0)


def test_regression_study_writes_figure_table_and_note(tmp_path):
    paths = run_study("regression-uncertainty", StudyOptions(out=tmp_path, epochs=150, n_train=200, seeds=[2],
                                                             progress=False, download=False))
    names = sorted(p.name for p in paths)
    assert names == ["regression-uncertainty.csv", "regression-uncertainty.md", "regression_uncertainty.png"]
    assert (tmp_path / "regression_uncertainty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((tmp_path / "regression-uncertainty.csv").open()))
    assert [r["region"] for r in rows] == ["inside 0 < x < 2pi", "left x < 0", "right x > 2pi"]
    assert float(rows[0]["true_noise_std"]) == pytest.approx(math.sqrt(0.005) * math.pi, rel=0.02)
    for r in rows:
        assert all(math.isfinite(float(r[k])) and float(r[k]) >= 0 for k in r if k not in ("region", "x_from", "x_to"))
    note = (tmp_path / "regression-uncertainty.md").read_text()
    assert "150 steps" in note and "seeds 2..6" in note and "| inside 0 < x < 2pi |" in note
