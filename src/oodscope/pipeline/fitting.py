"""Fitting a detector with a rejection threshold set on held-out in-distribution images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oodscope.data import ImageSet, ImageStream
from oodscope.detectors import Detector, create, detector_class, settings_for
from oodscope.errors import InputError
from oodscope.pipeline.decisions import scores_and_classes
from oodscope.pipeline.thresholds import choose_threshold

HOLDOUT_FRACTION = 0.1


@dataclass
class FitReport:
    """What :func:`fit_with_threshold` did: the fitted detector (threshold set), how many images
    it was fitted on and how many were held out, the threshold and how it was chosen."""

    detector: Detector
    n_fit: int
    n_holdout: int
    threshold: float
    rule: dict[str, Any]


def holdout_split(n: int, seed: int, fraction: float = HOLDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Random (fit, held-out) index arrays: ``max(1, round(fraction * n))`` held out.

    Raises:
        InputError: fewer than 2 images (nothing would be left to fit or to calibrate on).
    """
    if n < 2:
        raise InputError(f"need at least 2 training images (1 is held out to set the threshold), got {n}")
    n_hold = max(1, int(round(fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def fit_with_threshold(method: str, train: ImageSet | ImageStream, outliers: ImageSet | None = None, accept: float | None = 0.95,
                       seed: int = 0, preset: str = "cpu", overrides: dict[str, Any] | None = None,
                       device: str | None = None, fpr: float | None = None,
                       val_outliers: ImageSet | None = None, upstream: Any = None) -> FitReport:
    """Fit ``method`` (settings: ``preset``, then ``device`` and ``overrides``; the seed set) on
    90 % of ``train`` and set the threshold so that a fraction ``accept`` of the held-out 10 % (at
    least one image) scores at or below it, i.e. is accepted as in-distribution; or, with ``fpr``
    (and ``accept=None``), so that at most a fraction ``fpr`` of the known outliers
    ``val_outliers`` is accepted (:mod:`oodscope.pipeline.thresholds`; the rule and its held-out
    figures are saved with the model). A detector that needs class labels takes them from
    ``train.labels`` (e.g. one sub-folder per class); one that needs labelled validation images
    (``temperature``) gets the held-out 10 %. ``upstream``: a model of yours
    (:class:`~oodscope.upstream.adapter.ModelAdapter`) the detector reads instead of training its own.
    ``train`` may be a folder stream (:meth:`ImageStream.from_folder`) for a detector that fits on
    one: it then never holds the training images in memory, only the held-out 10 %.

    Raises:
        InputError: unknown method or setting, ``accept`` outside (0, 1] or ``fpr`` outside [0, 1),
            both or neither rule, ``fpr`` without ``val_outliers``, fewer than 2 images, missing
            outliers or labels the method needs.
    """
    if (accept is None) == (fpr is None):
        raise InputError("choose one threshold rule: accept or fpr (with validation outliers)")
    if accept is not None and not 0.0 < accept <= 1.0:
        raise InputError(f"accept must be in (0, 1], got {accept}")
    if fpr is not None and (not 0.0 <= fpr < 1.0 or val_outliers is None):
        raise InputError(f"fpr must be in [0, 1) and needs a set of validation outliers, got fpr={fpr}"
                         + ("" if val_outliers is not None else " and none"))
    cls = detector_class(method)
    settings = settings_for(method, preset, device, overrides, strict=True)
    if "seed" in cls.defaults:
        settings["seed"] = seed
    if isinstance(train, ImageStream):
        return _fit_stream(method, settings, train, outliers, accept, seed, fpr, val_outliers, upstream)
    if cls.requires.labels and (train.labels.min(initial=0) < 0 or len(np.unique(train.labels)) < 2):
        raise InputError(f"{method}: needs class labels of at least 2 classes; put the training images in one "
                         "sub-folder per class")
    fit_idx, hold_idx = holdout_split(len(train), seed)
    held_out = train.subset(hold_idx)
    return _fit_and_threshold(method, settings, train.subset(fit_idx), held_out, outliers, accept, fpr, val_outliers,
                              upstream)


def _fit_and_threshold(method: str, settings: dict[str, Any], fit: Any, held_out: ImageSet, outliers: ImageSet | None,
                       accept: float | None, fpr: float | None, val_outliers: ImageSet | None, upstream: Any) -> FitReport:
    det = create(method, **settings)
    det.fit(fit, outliers, validation=held_out if det.requires.validation else None, upstream=upstream)
    n_fit = fit.n_files if isinstance(fit, ImageStream) else len(fit)
    det.fitted["trained_on"] = {"images": int(n_fit), "held_out": int(len(held_out)),
                                "outliers": 0 if outliers is None else int(len(outliers))}
    held_scores, held_classes = scores_and_classes(det, held_out)
    rule = choose_threshold(det, held_scores, accept, fpr, None if val_outliers is None else det.score(val_outliers),
                            held_classes)
    return FitReport(det, det.fitted["trained_on"]["images"], len(held_out), rule["threshold"], rule)


def _fit_stream(method: str, settings: dict[str, Any], folder: ImageStream, outliers: ImageSet | None,
                accept: float | None, seed: int, fpr: float | None, val_outliers: ImageSet | None,
                upstream: Any) -> FitReport:
    """:func:`fit_with_threshold` on a folder stream: its files split 90 / 10 by ``seed``; the
    detector fits on the 90 % read batch by batch, the held-out 10 % is read into memory."""
    if folder.folder is None:
        raise InputError("fitting with a threshold on a stream takes an image folder (ImageStream.from_folder)")
    root, size, channels, batch = folder.folder
    fit_idx, hold_idx = holdout_split(folder.n_files, seed)
    fit = ImageStream.from_folder(root, batch, size, channels, keep=fit_idx)
    c = int(np.asarray(fit.first()).shape[1])
    parts = list(ImageStream.from_folder(root, batch, size, c, keep=hold_idx).pairs())
    labels = [np.full(len(x), -1) if y is None else np.asarray(y) for x, y in parts]
    held_out = ImageSet(np.concatenate([np.asarray(x) for x, _ in parts]), np.concatenate(labels).astype(np.int64),
                        list(folder.classes), str(root))
    return _fit_and_threshold(method, settings, fit, held_out, outliers, accept, fpr, val_outliers, upstream)
