"""Choosing a fitted detector's rejection threshold, and the record of how it was chosen.

Two rules:

* ``accept``: the threshold accepts a share ``accept`` of the held-out in-distribution images
  (:func:`oodscope.metrics.threshold_at_acceptance`);
* ``fpr``: on a validation set of known outliers, at most a share ``fpr`` is accepted as
  in-distribution (the false-positive rate of the "in" verdict,
  :func:`oodscope.metrics.threshold_at_outlier_acceptance`).

Either rule ends at a boundary score: the last held-out image accepted (``accept``), the first
validation outlier rejected (``fpr``). The threshold is then moved :data:`CLEARANCE` of the scores'
scale (their largest magnitude) past that score, on the side that keeps its verdict (never beyond
halfway to the next score): a float32 model scores the same in torch and in the onnxruntime engine
of ``oodscope score`` / ``serve`` only within float32 rounding (at most 4.7e-6 of the scale in
docs/lab/BENCHMARKS.md, "Scores you can trust as stated"), and a threshold one rounding step from a
score would flip that image's verdict between them.

The record (``Detector.threshold_rule``, saved with the model) names the rule and its target, and
the held-out figures at the chosen threshold: how many held-out in-distribution images (and
validation outliers) there were and what share of each is accepted. It also keeps the held-out
in-distribution scores, so the threshold can be chosen again later without refitting
(:func:`rethreshold`, ``oodscope threshold``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oodscope.detectors import Detector
from oodscope.errors import InputError
from oodscope.metrics import threshold_at_acceptance, threshold_at_outlier_acceptance

# how far (a share of the scores' largest magnitude) a threshold is kept from the boundary score
CLEARANCE = 1e-4


def clear_of(threshold: float, scores: np.ndarray, keep: str) -> float:
    """``threshold`` moved :data:`CLEARANCE` of the scores' scale away from the boundary score of
    ``scores`` on its side: above the largest accepted one (``keep="accepted"``) or below the
    smallest rejected one (``keep="rejected"``), but never past the midpoint between the two; the
    same scores are accepted and rejected as before."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    gap = CLEARANCE * max(float(np.abs(s).max()), 1e-300)
    accepted, rejected = s[s <= threshold], s[s > threshold]
    lo = float(accepted.max()) if accepted.size else None
    hi = float(rejected.min()) if rejected.size else None
    if keep == "accepted":
        want = lo + gap if lo is not None else threshold
    else:
        want = hi - gap if hi is not None else threshold
    if lo is not None and hi is not None:
        mid = (lo + hi) / 2
        want = min(want, mid) if keep == "accepted" else max(want, mid)
        if not lo < want < hi:  # adjacent float64 numbers: nothing lies between them
            want = threshold
    return float(want)


def _share_accepted(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean(np.asarray(scores) <= threshold))


# what a new threshold keeps of the old record: an explicit calibration set and the decision rule
# (oodscope.pipeline.decisions)
KEPT = ("calibration", "decision")
LONG = ("held_out_scores", "held_out_classes", "calibration")  # left out of the public record


def choose_threshold(detector: Detector, held_out_scores: np.ndarray, accept: float | None = None,
                     fpr: float | None = None, outlier_scores: np.ndarray | None = None,
                     held_out_classes: np.ndarray | None = None) -> dict[str, Any]:
    """Set ``detector``'s threshold by exactly one rule (``accept``, or ``fpr`` with
    ``outlier_scores``) and record it; returns the record without the stored scores. The held-out
    scores (and, for a detector reading a classifier, their predicted classes) are kept as the
    model's calibration for p-values (:mod:`oodscope.pipeline.decisions`).

    Raises:
        InputError: neither or both rules, a target out of range, ``fpr`` without outlier scores,
            or non-finite scores.
    """
    if (accept is None) == (fpr is None):
        raise InputError("choose one threshold rule: accept (share of held-out in-distribution images accepted) "
                         "or fpr (share of validation outliers accepted)")
    held = np.asarray(held_out_scores, dtype=np.float64).ravel()
    if accept is not None:
        threshold = clear_of(threshold_at_acceptance(held, accept), held, "accepted")
        rule: dict[str, Any] = {"rule": "accept", "target": float(accept)}
    else:
        if outlier_scores is None or len(outlier_scores) == 0:
            raise InputError("the fpr rule needs scores of validation outliers (a folder of known outliers)")
        threshold = clear_of(threshold_at_outlier_acceptance(outlier_scores, float(fpr)), outlier_scores, "rejected")
        rule = {"rule": "fpr", "target": float(fpr)}
        rule["outliers"] = {"n": int(len(outlier_scores)), "accepted": _share_accepted(outlier_scores, threshold)}
    rule["threshold"] = threshold
    rule["held_out"] = {"n": int(held.size), "accepted": _share_accepted(held, threshold) if held.size else None}
    record = {**rule, "held_out_scores": held.tolist()}
    if held_out_classes is not None:
        record["held_out_classes"] = np.asarray(held_out_classes, dtype=np.int64).ravel().tolist()
    old = detector.threshold_rule or {}
    record.update({k: old[k] for k in KEPT if k in old})
    detector.set_threshold(threshold, record)
    return rule


def held_out_scores(detector: Detector) -> np.ndarray:
    """The held-out in-distribution scores saved with the detector's threshold.

    Raises:
        InputError: the model was saved without them (fitted before thresholds kept them, or not
            with :func:`oodscope.pipeline.fit_with_threshold`).
    """
    rule = detector.threshold_rule or {}
    if "held_out_scores" not in rule:
        raise InputError(f"{detector.method}: this model holds no held-out in-distribution scores, so its "
                         "threshold cannot be chosen again without refitting (fit it with oodscope fit)")
    return np.asarray(rule["held_out_scores"], dtype=np.float64)


def rethreshold(detector: Detector, accept: float | None = None, fpr: float | None = None,
                outlier_scores: np.ndarray | None = None) -> dict[str, Any]:
    """Choose the threshold again from the saved held-out scores (and, for ``fpr``, the scores of
    validation outliers), without refitting."""
    classes = (detector.threshold_rule or {}).get("held_out_classes")
    return choose_threshold(detector, held_out_scores(detector), accept, fpr, outlier_scores, classes)


def public_rule(detector: Detector) -> dict[str, Any] | None:
    """The threshold record without the stored scores (for reports and the service's ``/model``);
    an explicit calibration set is summarised by its size and source."""
    if detector.threshold_rule is None:
        return None
    out = {k: v for k, v in detector.threshold_rule.items() if k not in LONG}
    if "calibration" in detector.threshold_rule:
        c = detector.threshold_rule["calibration"]
        out["calibration"] = {"source": c.get("source"), "n": len(c["scores"])}
    return out
