"""Putting a detector to work on your own images: fit with a held-out threshold, score files.

Public API::

    from oodscope.pipeline import fit_with_threshold, score_paths
    report = fit_with_threshold("layers", train, outliers=known, accept=0.95)   # FitReport
    report.detector.save("model/")
    files, scores = score_paths(report.detector, ["new_images/", "photo.png"])
    stream_scores(report.detector, collect_files(["big/"]), "scores.csv", reader_for(report.detector))  # resumable

The command line's ``fit`` and ``score`` are thin wrappers of these functions.
"""

from oodscope.pipeline.files import collect_files, read_for_model, score_files, score_paths, scores_csv
from oodscope.pipeline.streaming import StreamReport, reader_for, stream_scores
from oodscope.pipeline.fitting import HOLDOUT_FRACTION, FitReport, fit_with_threshold, holdout_split

__all__ = [
    "HOLDOUT_FRACTION",
    "FitReport",
    "collect_files",
    "fit_with_threshold",
    "holdout_split",
    "read_for_model",
    "score_files",
    "score_paths",
    "scores_csv",
    "reader_for",
    "stream_scores",
    "StreamReport",
]
