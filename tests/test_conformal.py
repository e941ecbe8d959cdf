"""Conformal p-values and the decisions on them (oodscope.metrics.conformal), against their papers'
formulas written out here independently: the p-value of Bates et al. (2023), Benjamini–Hochberg's
step-up rule (1995), LOND (Javanmard & Montanari 2018) and LORD++ (Ramdas et al. 2017)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from oodscope.errors import InputError
from oodscope.metrics.conformal import (
    OnlineFDR,
    check_class_level,
    check_level,
    class_p_values,
    flag_alpha,
    flag_bh,
    gamma,
    images_needed,
    p_values,
)


def reference_p(cal: np.ndarray, s: float) -> float:
    return (1 + sum(1 for c in cal if c >= s)) / (len(cal) + 1)


def test_p_values_follow_the_formula_ties_included() -> None:
    rng = np.random.default_rng(0)
    cal = np.round(rng.normal(size=50), 1)  # ties on purpose
    s = np.concatenate([np.round(rng.normal(size=40), 1), cal[:5], [-10.0, 10.0]])
    want = np.array([reference_p(cal, v) for v in s])
    np.testing.assert_array_equal(p_values(cal, s), want)
    assert p_values(cal, [10.0])[0] == 1 / 51 and p_values(cal, [-10.0])[0] == 1.0


def _uniformity(shift: float, trials: int = 20000, n: int = 19) -> float:
    """Chi-square p-value of 'the test image's conformal p-value is uniform on {1..n+1}/(n+1)'."""
    rng = np.random.default_rng(7)
    cal = rng.normal(size=(trials, n))
    test = rng.normal(size=trials) + shift
    ranks = np.round(np.array([p_values(c, [t])[0] for c, t in zip(cal, test)]) * (n + 1)).astype(int)
    counts = np.bincount(ranks, minlength=n + 2)[1:]
    return float(stats.chisquare(counts).pvalue)


def test_p_values_are_uniform_under_exchangeability_and_not_otherwise() -> None:
    # exchangeable: p is exactly uniform on {1/20, ..., 20/20}; the chi-square test of 20,000
    # draws keeps that (fails by chance with probability 1e-3 for a fixed seed: it does not here)
    assert _uniformity(0.0) > 1e-3
    # a test image from another distribution (shifted by a quarter sd) is visibly not uniform:
    # the same test can fail
    assert _uniformity(0.25) < 1e-6


def test_per_image_rule_flags_an_in_distribution_image_at_most_alpha_often() -> None:
    rng = np.random.default_rng(1)
    cal, test = rng.exponential(size=999), rng.exponential(size=200000)
    for alpha in (0.01, 0.05, 0.1):
        rate = flag_alpha(p_values(cal, test), alpha).mean()
        # given the calibration set the rate is Beta-distributed around alpha; 999 images keep it within
        # a few percent of alpha, and (1 + 999) * alpha is a whole number, so the expected rate is alpha exactly
        assert abs(rate - alpha) < 0.25 * alpha + 0.003, (alpha, rate)


def test_a_level_the_calibration_cannot_reach_is_refused_with_the_images_it_needs() -> None:
    assert images_needed(0.05) == 19 and images_needed(0.01) == 99 and images_needed(0.1) == 9
    assert images_needed(0.3) == 3  # 1/(2+1) > 0.3 >= 1/(3+1)
    check_level(19, 0.05)
    with pytest.raises(InputError, match="needs at least 19 calibration images.*there are 18"):
        check_level(18, 0.05)
    with pytest.raises(InputError, match="in \\(0, 1\\)"):
        images_needed(0.0)


def reference_bh(p: np.ndarray, q: float) -> np.ndarray:
    """The step-up rule: reject the k smallest, k the largest with p_(k) <= k q / m."""
    m = len(p)
    order = np.argsort(p)
    k = 0
    for i in range(m):
        if p[order[i]] <= (i + 1) * q / m:
            k = i + 1
    out = np.zeros(m, dtype=bool)
    out[order[:k]] = True
    return out


def test_bh_equals_the_step_up_rule_and_scipy() -> None:
    rng = np.random.default_rng(2)
    for trial in range(50):
        m = int(rng.integers(1, 300))
        p = np.concatenate([rng.uniform(size=m), rng.uniform(0, 0.01, size=int(rng.integers(0, 30)))])
        p = np.round(p, 3)  # ties
        for q in (0.05, 0.1, 0.2):
            got = flag_bh(p, q)
            np.testing.assert_array_equal(got, reference_bh(p, q))
            np.testing.assert_array_equal(got, stats.false_discovery_control(p, method="bh") <= q)
    assert flag_bh([], 0.1).size == 0


def test_class_conditional_p_values_use_each_class_own_calibration() -> None:
    rng = np.random.default_rng(3)
    cal, cal_k = rng.normal(size=60), rng.integers(0, 3, size=60)
    s, k = rng.normal(size=30), np.concatenate([rng.integers(0, 3, size=28), [7, 7]])
    got = class_p_values(cal, cal_k, s, k)
    for v, c, g in zip(s, k, got):
        assert g == (reference_p(cal[cal_k == c], v) if c in cal_k else 1.0)
    check_class_level(np.repeat([0, 1], 19), 0.05)
    with pytest.raises(InputError, match="class 1: 18"):
        check_class_level(np.concatenate([np.zeros(19), np.ones(18)]), 0.05)


def test_gamma_is_the_published_sequence_and_sums_to_at_most_one() -> None:
    j = np.arange(1, 2_000_001, dtype=np.float64)
    ref = 0.07720838 * np.log(np.maximum(j, 2)) / (j * np.exp(np.sqrt(np.log(j))))
    np.testing.assert_allclose(gamma(j), ref, rtol=1e-12)
    assert gamma(0) == 0 and gamma(-3) == 0
    assert 0.5 < ref.sum() < 1.0  # the tail beyond 2e6 is what is left of 1


def reference_levels(p: np.ndarray, q: float, rule: str, w0: float) -> tuple[np.ndarray, np.ndarray]:
    """The papers' test levels written out step by step."""
    def g(i: int) -> float:
        return 0.0 if i < 1 else 0.07720838 * math.log(max(i, 2)) / (i * math.exp(math.sqrt(math.log(i))))
    taus: list[int] = []
    levels, rejects = [], []
    for t in range(1, len(p) + 1):
        if rule == "lond":
            a = q * g(t) * (len(taus) + 1)
        else:  # LORD++: gamma_t W0 + (q - W0) gamma_{t - tau_1} + q sum_{j >= 2} gamma_{t - tau_j}
            a = g(t) * w0 + ((q - w0) * g(t - taus[0]) if taus else 0.0) + q * sum(g(t - tj) for tj in taus[1:])
        levels.append(a)
        rejects.append(p[t - 1] <= a)
        if rejects[-1]:
            taus.append(t)
    return np.array(levels), np.array(rejects)


@pytest.mark.parametrize("rule", ["lond", "lord++"])
def test_online_rules_follow_their_papers_and_resume_from_their_state(rule: str) -> None:
    rng = np.random.default_rng(4)
    # a stream where the OOD share changes: strong signals (tiny p) in the middle third
    p = rng.uniform(size=600)
    p[200:400:2] = rng.uniform(0, 1e-4, size=100)
    levels, want = reference_levels(p, 0.1, rule, 0.05)
    whole = OnlineFDR(0.1, rule)
    got_levels = []
    for v in p:
        got_levels.append(whole.level())
        whole.test(v)
    np.testing.assert_allclose(got_levels, levels, rtol=1e-12)
    assert whole.rejections == [i + 1 for i in np.flatnonzero(want)] and want.sum() > 20
    # stop after 250, save the state as JSON, restore it and go on: the same decisions
    first = OnlineFDR(0.1, rule)
    a = first.test_many(p[:250])
    resumed = OnlineFDR.from_state(json.loads(json.dumps(first.state())))
    b = resumed.test_many(p[250:])
    np.testing.assert_array_equal(np.concatenate([a, b]), want)
    assert resumed.state() == whole.state()


def test_online_state_and_settings_are_checked() -> None:
    with pytest.raises(InputError, match="one of lond, lord\\+\\+"):
        OnlineFDR(0.1, "saffron")
    with pytest.raises(InputError, match="w0"):
        OnlineFDR(0.1, "lord++", w0=0.2)
    with pytest.raises(InputError, match="not an online FDR state"):
        OnlineFDR.from_state({"rule": "lond"})
    with pytest.raises(InputError, match="1..t"):
        OnlineFDR.from_state({"rule": "lond", "q": 0.1, "w0": 0.05, "t": 3, "rejections": [5]})
