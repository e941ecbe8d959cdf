import numpy as np
import pytest

from oodscope.errors import InputError
from oodscope.metrics import auroc, aupr_in, aupr_out, evaluate, fpr_at_tpr, threshold_at_acceptance
from oodscope.metrics import threshold_at_outlier_acceptance


def test_perfect_and_reversed_separation():
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1])
    assert auroc(s, y) == 1.0 and auroc(-s, y) == 0.0
    assert aupr_in(s, y) == 1.0 and aupr_out(s, y) == 1.0
    assert fpr_at_tpr(s, y) == 0.0 and fpr_at_tpr(-s, y) == 1.0


def test_auroc_counts_pairs():
    rng = np.random.default_rng(0)
    s = rng.normal(size=200)
    y = rng.integers(0, 2, 200)
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean()
    assert auroc(s, y) == pytest.approx(pairs)


def test_fpr95_matches_definition():
    id_s = np.arange(100.0)  # in-distribution scores 0..99
    ood = np.array([50.0, 94.0, 94.5, 200.0])
    s = np.r_[id_s, ood]
    y = np.r_[np.zeros(100), np.ones(4)]
    # the 95th smallest ID score (94) accepts exactly 95 % -> OOD 50 and 94 (a tie) accepted, 94.5 not
    assert threshold_at_acceptance(id_s, 0.95) == 94.0
    assert fpr_at_tpr(s, y) == 0.5
    m = evaluate(s, y)
    assert set(m) == {"auroc", "aupr_in", "aupr_out", "fpr95"} and m["fpr95"] == 50.0


def _fpr_by_counting(id_s: np.ndarray, ood_s: np.ndarray, tpr: float) -> float:
    """The definition by hand: try thresholds from the lowest ID score up; the first accepting at
    least ``tpr`` of the ID scores (score <= threshold) gives the share of OOD scores accepted."""
    for t in np.sort(np.unique(id_s)):
        if np.sum(id_s <= t) >= tpr * len(id_s) - 1e-9:
            return float(np.mean(ood_s <= t))
    raise AssertionError("unreachable")


@pytest.mark.parametrize("n", [20, 40, 100, 1000])
def test_fpr95_with_n_a_multiple_of_20_accepts_exactly_95_percent(n):
    rng = np.random.default_rng(n)
    id_s, ood_s = rng.permutation(n).astype(float), rng.uniform(-5, n + 5, 333)
    thr = threshold_at_acceptance(id_s, 0.95)
    assert np.sum(id_s <= thr) == 19 * n // 20  # exactly 95 %, not one image more
    s, y = np.r_[id_s, ood_s], np.r_[np.zeros(n), np.ones(len(ood_s))]
    assert fpr_at_tpr(s, y) == _fpr_by_counting(id_s, ood_s, 0.95) == np.mean(ood_s <= thr)


@pytest.mark.parametrize("seed", range(6))
def test_fpr95_with_ties_matches_counting(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    id_s = rng.integers(0, 12, n).astype(float)  # many ties, also across the two sets
    ood_s = rng.integers(5, 20, int(rng.integers(5, 200))).astype(float)
    s, y = np.r_[id_s, ood_s], np.r_[np.zeros(n), np.ones(len(ood_s))]
    for tpr in (0.5, 0.9, 0.95, 1.0):
        assert fpr_at_tpr(s, y, tpr) == pytest.approx(_fpr_by_counting(id_s, ood_s, tpr), abs=0)
        assert np.mean(id_s <= threshold_at_acceptance(id_s, tpr)) >= tpr - 1e-12


def test_threshold_accepts_the_requested_fraction():
    s = np.random.default_rng(1).normal(size=1000)
    for rate in (0.5, 0.9, 0.95, 0.99):
        assert np.mean(s <= threshold_at_acceptance(s, rate)) == pytest.approx(rate, abs=0.002)


def test_threshold_at_outlier_acceptance_caps_the_false_positive_rate():
    s = np.random.default_rng(2).normal(size=1000)
    for rate in (0.0, 0.01, 0.05, 0.2):
        t = threshold_at_outlier_acceptance(s, rate)
        assert np.mean(s <= t) <= rate and np.mean(s <= t) == pytest.approx(rate, abs=0.001)  # highest such t
    ties = np.array([1.0, 2.0, 2.0, 2.0, 5.0])
    assert np.mean(ties <= threshold_at_outlier_acceptance(ties, 0.4)) == 0.2  # never above the target with ties
    assert threshold_at_outlier_acceptance(ties, 0.0) < 1.0
    with pytest.raises(InputError, match="rate"):
        threshold_at_outlier_acceptance(ties, 1.0)
    with pytest.raises(InputError, match="NaN"):
        threshold_at_outlier_acceptance([np.nan, 1.0], 0.1)


def test_bad_inputs():
    with pytest.raises(InputError, match="both"):
        auroc([0.1, 0.2], [0, 0])
    with pytest.raises(InputError, match="NaN"):
        auroc([np.nan, 0.2], [0, 1])
    with pytest.raises(InputError, match="length"):
        auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(InputError, match="no"):
        threshold_at_acceptance([], 0.95)
    with pytest.raises(InputError, match="rate"):
        threshold_at_acceptance([1.0], 1.5)


def test_thresholds_keep_clear_of_the_score_that_set_them():
    from oodscope.pipeline.thresholds import CLEARANCE, clear_of

    s = np.array([-3.0, -1.0, 0.5, 0.50000001, 2.0, 4.0])
    gap = CLEARANCE * 4.0
    assert clear_of(-1.0, s, "accepted") == -1.0 + gap  # just above the last accepted score
    assert clear_of(np.nextafter(2.0, -np.inf), s, "rejected") == 2.0 - gap  # just below the first rejected
    mid = clear_of(0.5, s, "accepted")  # the next score is nearer than the clearance: halfway to it
    assert 0.5 < mid < 0.50000001 and mid == (0.5 + 0.50000001) / 2
    assert clear_of(4.0, s, "accepted") == 4.0 + gap and clear_of(np.nextafter(-3.0, -np.inf), s, "rejected") == -3.0 - gap
    for t, keep in ((-1.0, "accepted"), (0.5, "accepted"), (np.nextafter(2.0, -np.inf), "rejected")):
        assert np.array_equal(s <= clear_of(t, s, keep), s <= t)  # the same verdicts on the scores themselves
