"""The toy regression of Takahashi, "Deep learning: reliability of inference" (University of Aizu
lecture notes, n.d., figs. 8.1 and 8.2): ``y = sin(x) + eps``, ``eps ~ N(0, 0.005 x^2)``, observed
only for ``0 < x < 2 pi``. A deep ensemble of M = 5 mean-variance networks (differing only in their
seed) is evaluated on ``[-pi, 3 pi]``: the aleatoric uncertainty (the members' mean sigma^2) should
follow the true noise ``0.0707 |x|`` where there is data, the epistemic one (the members'
disagreement) should grow where there is none. See :mod:`oodscope.calibration.regression`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

from oodscope.calibration.regression import S_MAX, S_MIN, MeanVarianceNet, ensemble_predict, fit_regressor, noise_std, toy_data
from oodscope.figures.style import new_figure, save_png
from oodscope.studies.base import Study, StudyOptions, StudyOutput, markdown_table

DEFAULT_EPOCHS = 2000  # full-batch Adam steps per member
DEFAULT_N_TRAIN = 1000
MEMBERS = 5
LOW, HIGH = 0.0, 2 * math.pi
GRID = np.linspace(-math.pi, 3 * math.pi, 801)
_EPS = 1e-9  # the grid points at 0 and 2pi (up to rounding) belong to no region
REGIONS = (("inside 0 < x < 2pi", GRID[(GRID > LOW + _EPS) & (GRID < HIGH - _EPS)]),
           ("left x < 0", GRID[GRID < LOW - _EPS]), ("right x > 2pi", GRID[GRID > HIGH + _EPS]))
HEADER = ["region", "x_from", "x_to", "true_noise_std", "single_aleatoric_std", "aleatoric_std", "epistemic_std",
          "total_std", "single_rmse", "rmse", "coverage_2sd"]


def _coverage(mean: np.ndarray, sd: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(|y - mean| <= 2 sd) for y ~ N(sin x, 0.005 x^2), the true distribution, at each x."""
    tau = np.maximum(noise_std(x), 1e-12)
    return norm.cdf((mean + 2 * sd - np.sin(x)) / tau) - norm.cdf((mean - 2 * sd - np.sin(x)) / tau)


def _region_stats(models: list[MeanVarianceNet]) -> list[dict[str, Any]]:
    """Per region of :data:`GRID`, the means over its points of the numbers in :data:`HEADER`."""
    stats = []
    for name, x in REGIONS:
        ens, one = ensemble_predict(models, x), ensemble_predict(models[:1], x)
        total = np.sqrt(ens["aleatoric_var"] + ens["epistemic_var"])
        values = (name, x[0], x[-1], noise_std(x).mean(), np.sqrt(one["aleatoric_var"]).mean(),
                  np.sqrt(ens["aleatoric_var"]).mean(), np.sqrt(ens["epistemic_var"]).mean(), total.mean(),
                  np.sqrt(np.mean((one["mean"] - np.sin(x)) ** 2)), np.sqrt(np.mean((ens["mean"] - np.sin(x)) ** 2)),
                  _coverage(ens["mean"], total, x).mean())
        stats.append(dict(zip(HEADER, values)))
    return stats


def regression_uncertainty(options: StudyOptions) -> StudyOutput:
    seed = options.seeds[0]
    n = options.n_train or DEFAULT_N_TRAIN
    epochs = options.epochs or DEFAULT_EPOCHS
    x, y = toy_data(n, LOW, HIGH, seed=seed)
    models = [fit_regressor(x, y, seed=seed + i, epochs=epochs) for i in range(MEMBERS)]
    stats = _region_stats(models)
    rows = [[st["region"], *[f"{st[k]:.3f}" if k.startswith("x_") else f"{st[k]:.4f}" for k in HEADER[1:]]]
            for st in stats]
    out = StudyOutput(figures=[_figure(models, x, y, options)], table=(HEADER, rows))
    shown = [0, 3, 4, 5, 6, 7, 9, 10]
    inside, left, right = stats
    out.lines = [
        f"{n} training points x ~ U(0, 2pi), y = sin x + N(0, 0.005 x^2); an ensemble of {MEMBERS} mean-variance "
        f"MLPs (1-64-64-2, ReLU, outputs mu and s = log sigma^2, Gaussian NLL, full-batch Adam, {epochs} steps), "
        f"seeds {seed}..{seed + MEMBERS - 1} (the data from seed {seed}). Evaluated on {len(GRID)} points of "
        "[-pi, 3pi]; per region the mean over its points of each standard deviation, the RMSE of the predicted "
        "mean against sin x (single: the first member alone), and the probability that a fresh y from the true "
        "distribution falls inside the ensemble's mean +- 2 total sd (0.954 if the uncertainty were exact).", "",
        *markdown_table([HEADER[i] for i in shown], [[r[i] for i in shown] for r in rows]), "",
        "aleatoric_std: sqrt of the members' mean sigma^2; epistemic_std: sqrt of the variance of the members' "
        "means; total_std: sqrt of their sum (the variance of the members' Gaussian mixture). The networks' "
        f"s = log sigma^2 is clamped to [{S_MIN:g}, {S_MAX:g}] (sigma from {math.exp(S_MIN / 2):.4f} to "
        f"{math.exp(S_MAX / 2):.0f}).", "",
        f"Inside the training range the aleatoric sd ({inside['aleatoric_std']:.3f}) follows the true noise "
        f"({inside['true_noise_std']:.3f}) and the epistemic sd is {inside['epistemic_std']:.4f}; outside it is "
        f"{left['epistemic_std']:.3f} (x < 0) and {right['epistemic_std']:.3f} (x > 2pi), "
        f"{left['epistemic_std'] / inside['epistemic_std']:.0f} and "
        f"{right['epistemic_std'] / inside['epistemic_std']:.0f} times larger; the actual error of the mean "
        f"there is RMSE {left['rmse']:.3f} and {right['rmse']:.3f}, and the +- 2 total sd band "
        f"holds a fresh y with probability {left['coverage_2sd']:.2f} and {right['coverage_2sd']:.2f} instead of "
        f"{inside['coverage_2sd']:.2f} inside. Outside, the aleatoric sd is an extrapolation of the networks "
        f"({left['aleatoric_std']:.3f} against a true {left['true_noise_std']:.3f} for x < 0, "
        f"{right['aleatoric_std']:.3f} against {right['true_noise_std']:.3f} for x > 2pi).",
    ]
    return out


def _figure(models: list[MeanVarianceNet], x: np.ndarray, y: np.ndarray, options: StudyOptions) -> Path:
    g = GRID
    ens, one = ensemble_predict(models, g), ensemble_predict(models[:1], g)
    ale, epi = np.sqrt(ens["aleatoric_var"]), np.sqrt(ens["epistemic_var"])
    tot = np.sqrt(ens["aleatoric_var"] + ens["epistemic_var"])
    true_sd = noise_std(g)
    ylim = (-3.0, 3.0)
    fig = new_figure(13, 8.5)
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]

    def frame(ax, title: str) -> None:
        for b in (LOW, HIGH):
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.axvspan(g[0], LOW, color="grey", alpha=0.08, lw=0)
        ax.axvspan(HIGH, g[-1], color="grey", alpha=0.08, lw=0)
        ax.set_xlim(g[0], g[-1])
        ax.set_xticks(np.arange(-1, 3.5, 0.5) * math.pi,
                      ["-π", "-π/2", "0", "π/2", "π", "3π/2", "2π", "5π/2", "3π"])
        ax.set_xlabel("x (shaded: no training data)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.25)

    ax = axes[0]
    ax.scatter(x, y, s=3, alpha=0.45, color="tab:blue", label=f"training data (n = {len(x)})")
    ax.plot(g, np.sin(g), color="black", lw=1.2, label="sin x")
    ax.fill_between(g, np.sin(g) - 2 * true_sd, np.sin(g) + 2 * true_sd, color="black", alpha=0.08,
                    label="sin x ± 2 true noise sd")
    ax.set_ylim(*ylim)
    frame(ax, "(a) y = sin x + N(0, 0.005 x²), observed for 0 < x < 2π")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[1]
    sd1 = np.sqrt(one["aleatoric_var"])
    ax.fill_between(g, one["mean"] - 2 * sd1, one["mean"] + 2 * sd1, color="tab:blue", alpha=0.3,
                    label="μ ± 2σ (aleatoric)")
    ax.plot(g, one["mean"], color="tab:blue", lw=1.5, label="μ(x)")
    ax.plot(g, np.sin(g), color="black", lw=1, ls="--", label="sin x")
    ax.set_ylim(*ylim)
    frame(ax, f"(b) one network (seed {options.seeds[0]}): mean ± 2σ, aleatoric only")
    ax.legend(fontsize=7, loc="upper left")

    ax = axes[2]
    m = ens["mean"]
    # the aleatoric band, and beyond it, up to the total band, the part the epistemic variance adds
    ax.fill_between(g, m - 2 * ale, m + 2 * ale, color="tab:blue", alpha=0.3, lw=0, label="± 2 aleatoric sd")
    ax.fill_between(g, m + 2 * ale, m + 2 * tot, color="tab:orange", alpha=0.45, lw=0,
                    label="± 2 total sd (epistemic added)")
    ax.fill_between(g, m - 2 * tot, m - 2 * ale, color="tab:orange", alpha=0.45, lw=0)
    for i, mu in enumerate(ens["mus"]):
        ax.plot(g, mu, color="tab:green", lw=0.7, alpha=0.8, label="members' μ_i" if i == 0 else None)
    ax.plot(g, m, color="tab:red", lw=1.5, label="ensemble mean μ*")
    ax.plot(g, np.sin(g), color="black", lw=1, ls="--", label="sin x")
    ax.set_ylim(*ylim)
    frame(ax, f"(c) ensemble of {len(models)}: mean, aleatoric and total ± 2 sd")
    ax.legend(fontsize=7, loc="upper left")

    ax = axes[3]
    ax.plot(g, true_sd, color="black", lw=1.2, ls="--", label="true noise sd 0.0707|x|")
    ax.plot(g, ale, color="tab:blue", lw=1.5, label="aleatoric sd (members' mean σ²)")
    ax.plot(g, epi, color="tab:orange", lw=1.5, label="epistemic sd (spread of the μ_i)")
    ax.plot(g, np.abs(m - np.sin(g)), color="tab:red", lw=0.7, alpha=0.6, label="|μ* − sin x| (actual error)")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 10)
    frame(ax, "(d) standard deviations against x (log scale)")
    ax.set_ylabel("standard deviation")
    ax.legend(fontsize=7, loc="upper right")
    return save_png(fig, Path(options.out) / "regression_uncertainty.png")


REGRESSION_UNCERTAINTY = Study(
    "regression-uncertainty",
    'Takahashi, "Deep learning: reliability of inference" (University of Aizu lecture notes, n.d.), figs. 8.1-8.2',
    "aleatoric and epistemic uncertainty of a deep ensemble on y = sin x + noise, inside and outside the training range",
    regression_uncertainty)
