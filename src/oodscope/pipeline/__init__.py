"""Putting a detector to work on your own images: fit with a held-out threshold, score files.

Public API::

    from oodscope.pipeline import collect_files, fit_with_threshold, reader_for, score_paths, stream_scores
    report = fit_with_threshold("layers", train, outliers=known, accept=0.95)   # FitReport (or fpr=, val_outliers=)
    report.detector.save("model/")
    files, scores = score_paths(report.detector, ["new_images/", "photo.png"])
    stream_scores(report.detector, collect_files(["big/"]), "scores.csv", reader_for(report.detector))  # resumable

    # decisions with a guarantee, on conformal p-values from the held-out scores
    decider = Decider(report.detector, DecisionRule("bh", 0.1))        # or "alpha", "lond", "lord++"
    p, flagged = decider.decide(report.detector.score(batch))

The command line's ``fit``, ``score`` and ``threshold`` are thin wrappers of these functions
(thresholds: :mod:`oodscope.pipeline.thresholds`; p-values and decision rules:
:mod:`oodscope.pipeline.decisions`).
"""

from oodscope.pipeline.decisions import Decider, DecisionRule, calibrate, calibration_of, record_rule
from oodscope.pipeline.files import collect_files, model_geometry, read_for_model, score_files, score_paths
from oodscope.pipeline.streaming import StreamReport, reader_for, stream_scores
from oodscope.pipeline.fitting import HOLDOUT_FRACTION, FitReport, fit_with_threshold, holdout_split

__all__ = [
    "Decider",
    "DecisionRule",
    "calibrate",
    "calibration_of",
    "record_rule",
    "HOLDOUT_FRACTION",
    "FitReport",
    "collect_files",
    "fit_with_threshold",
    "holdout_split",
    "read_for_model",
    "score_files",
    "score_paths",
    "model_geometry",
    "reader_for",
    "stream_scores",
    "StreamReport",
]
