"""AUROC, AUPR-in/out and FPR at 95 % TPR (Hendrycks & Gimpel 2017), computed with scikit-learn.

Convention: scores are higher for more out-of-distribution inputs; ``is_ood`` is 1 for OOD.
AUROC treats OOD as the positive class. AUPR-in takes in-distribution as positive (scored by
the negated score), AUPR-out takes OOD as positive. FPR@95TPR is the fraction of OOD inputs
accepted (score at or below the threshold) at the smallest threshold that accepts at least 95 %
of the in-distribution inputs: the first point of scikit-learn's ``roc_curve`` (in-distribution
positive, all thresholds kept) whose true-positive rate reaches 0.95, as OpenOOD computes it
(Zhang et al., "OpenOOD v1.5: enhanced benchmark for out-of-distribution detection", 2023).
With ties, every input scoring exactly the threshold is accepted with it.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oodscope.errors import InputError


def _check(scores: np.ndarray, is_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_ood).astype(bool).ravel()
    if s.shape != y.shape:
        raise InputError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if s.size == 0:
        raise InputError("no scores given")
    if not np.all(np.isfinite(s)):
        raise InputError("scores contain NaN or infinity")
    if y.all() or not y.any():
        raise InputError("metrics need both in-distribution and out-of-distribution samples")
    return s, y


def auroc(scores: np.ndarray, is_ood: np.ndarray) -> float:
    s, y = _check(scores, is_ood)
    return float(roc_auc_score(y, s))


def aupr_in(scores: np.ndarray, is_ood: np.ndarray) -> float:
    s, y = _check(scores, is_ood)
    return float(average_precision_score(~y, -s))


def aupr_out(scores: np.ndarray, is_ood: np.ndarray) -> float:
    s, y = _check(scores, is_ood)
    return float(average_precision_score(y, s))


def _threshold_scores(scores: np.ndarray, what: str) -> np.ndarray:
    """``scores`` as a flat float64 array to set a threshold from.

    Raises:
        InputError: no scores, or NaN / infinite ones.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise InputError(f"no {what} scores to set a threshold from")
    if not np.all(np.isfinite(s)):
        raise InputError("scores contain NaN or infinity")
    return s


def threshold_at_acceptance(id_scores: np.ndarray, rate: float = 0.95) -> float:
    """The smallest threshold that accepts (score at or below it) at least a fraction ``rate`` of
    these in-distribution scores: the k-th smallest score, k the smallest count with
    k / n >= ``rate`` (e.g. the 95th of 100, accepting exactly 95 %; ties accepted together).

    Inputs scoring above the threshold are rejected as out-of-distribution.
    """
    s = np.sort(_threshold_scores(id_scores, "in-distribution"))
    if not 0.0 < rate <= 1.0:
        raise InputError(f"acceptance rate must be in (0, 1], got {rate}")
    n = s.size
    k = max(1, min(n, int(np.ceil(rate * n))))
    while k > 1 and (k - 1) / n >= rate:  # ceil of a rounded product may overshoot by one
        k -= 1
    while k < n and k / n < rate:
        k += 1
    return float(s[k - 1])


def threshold_at_outlier_acceptance(outlier_scores: np.ndarray, rate: float = 0.05) -> float:
    """The highest threshold at which at most a fraction ``rate`` of these known outliers' scores
    fall at or below it (are accepted as in-distribution): the false-positive rate of the
    in-distribution verdict on them is at most ``rate``. Inputs scoring above it are rejected.
    """
    s = np.sort(_threshold_scores(outlier_scores, "outlier"))
    if not 0.0 <= rate < 1.0:
        raise InputError(f"false-positive rate must be in [0, 1), got {rate}")
    k = int(np.floor(rate * s.size + 1e-9))  # outliers that may be accepted
    return float(np.nextafter(s[k], -np.inf))  # just below the (k+1)-th lowest: it and all above are rejected


def fpr_at_tpr(scores: np.ndarray, is_ood: np.ndarray, tpr: float = 0.95) -> float:
    """The fraction of OOD inputs accepted at the smallest threshold accepting at least ``tpr`` of
    the in-distribution inputs (scikit-learn's ROC with in-distribution positive, every threshold
    kept: the first point whose true-positive rate reaches ``tpr``)."""
    s, y = _check(scores, is_ood)
    if not 0.0 < tpr <= 1.0:
        raise InputError(f"true-positive rate must be in (0, 1], got {tpr}")
    fpr, tp_rate, _ = roc_curve(~y, -s, drop_intermediate=False)
    return float(fpr[np.argmax(tp_rate >= tpr)])


def evaluate(scores: np.ndarray, is_ood: np.ndarray) -> dict[str, float]:
    """All four metrics, in percent as papers report them."""
    return {
        "auroc": 100 * auroc(scores, is_ood),
        "aupr_in": 100 * aupr_in(scores, is_ood),
        "aupr_out": 100 * aupr_out(scores, is_ood),
        "fpr95": 100 * fpr_at_tpr(scores, is_ood),
    }


def classification_accuracy(logits: np.ndarray, classes: np.ndarray) -> float:
    """Accuracy in percent of ``argmax(logits)`` on the inputs whose class is known (``classes`` >= 0;
    out-of-distribution inputs carry -1 and are left out)."""
    logits = np.asarray(logits)
    classes = np.asarray(classes).ravel()
    if logits.ndim != 2 or len(logits) != len(classes):
        raise InputError(f"logits of shape {logits.shape} do not fit {len(classes)} class labels")
    known = classes >= 0
    if not known.any():
        raise InputError("no in-distribution inputs with a class to measure accuracy on")
    return float(100 * np.mean(logits[known].argmax(axis=1) == classes[known]))
