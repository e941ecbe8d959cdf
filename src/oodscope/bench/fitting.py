"""Fitting and scoring the detector of one cell, with shared upstream networks.

A detector that reads an upstream network (``requires.upstream``: GEOM's f, a classifier) gets
it from an :class:`~oodscope.detectors.UpstreamCache`, keyed by the network's settings and
training data, so cells of one (class, seed) or (protocol, seed) - and, with the disk cache,
other suites and processes - train it once. A cell's ``fit_seconds`` counts the upstream's
training (as recorded when it was trained) plus the detector's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oodscope.bench.user_model import BenchModel
from oodscope.calibration import BINS, expected_calibration_error, negative_log_likelihood
from oodscope.detectors import UpstreamCache, UpstreamInfo, detector_class
from oodscope.errors import InputError
from oodscope.inputs import as_images
from oodscope.metrics import classification_accuracy, evaluate
from oodscope.protocols import Task


@dataclass
class CellOutcome:
    """Metrics, timings, settings, upstream and test scores of one fitted and scored cell."""

    metrics: dict[str, float]
    fit_seconds: float
    score_seconds: float
    settings: dict[str, Any]
    upstream: UpstreamInfo | None
    scores: np.ndarray
    kept: dict[str, np.ndarray] = field(default_factory=dict)
    n_outliers: int = 0  # known outliers given to the detector (0 for one that uses none)


def _labels(images: Any) -> torch.Tensor | None:
    return None if images is None else torch.from_numpy(np.asarray(images.labels, dtype=np.int64))


def upstream_inputs(up: type, task: Task) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """What an upstream network of class ``up`` trains on in ``task``: images, their labels (for
    networks that need them), validation images and their labels."""
    x = as_images(task.train, "training images")
    labels = _labels(task.train) if up.needs_labels else None
    val = None if task.validation is None else as_images(task.validation, "validation images")
    val_labels = _labels(task.validation) if up.needs_labels and val is not None else None
    return x, labels, val, val_labels


def shared_upstream(cls: type, config: dict[str, Any], task: Task, cache: UpstreamCache,
                    model: BenchModel | None = None) -> tuple[Any, UpstreamInfo | None]:
    """The upstream network a detector of class ``cls`` with ``config`` reads, from ``cache``; with
    a ``model`` of yours, that model (for detectors that take one).

    Raises:
        InputError: a detector that reads only its own network, given a model of yours.
    """
    up = cls.requires.upstream
    if up is None:
        return None, None
    if model is not None:
        if not (up.takes_user_models or cls.requires.user_models):
            raise InputError(f"{cls.method}: reads its own {up.kind} network, not a model of yours (--model)")
        adapter = model.adapter()
        return adapter, model.info(adapter)
    return cache.get(up, up.settings_from(config), *upstream_inputs(up, task))


def classifier_metrics(logits: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Accuracy (%), ECE (%, 15 bins, the notes' bin centres and Guo et al.'s bin means) and NLL
    of the classifier on the in-distribution test images (``classes`` >= 0)."""
    known = np.asarray(classes) >= 0
    z = torch.as_tensor(np.asarray(logits)[known], dtype=torch.float64)
    probs, labels = torch.softmax(z, dim=1).numpy(), np.asarray(classes)[known]
    return {"accuracy": classification_accuracy(logits, classes),
            "ece": 100 * expected_calibration_error(probs, labels, BINS, "centre"),
            "ece_mean": 100 * expected_calibration_error(probs, labels, BINS, "mean"),
            "nll": negative_log_likelihood(probs, labels)}


def fit_detector(method: str, settings: dict[str, Any], task: Task, cache: UpstreamCache,
                 model: BenchModel | None = None) -> tuple[Any, UpstreamInfo | None, float]:
    """Fit ``method`` with ``settings`` on ``task``, sharing its upstream through ``cache`` (or reading
    a ``model`` of yours): the fitted detector, where its upstream came from, and the seconds its own
    fit took."""
    cls = detector_class(method)
    det = cls(**settings)
    upstream, info = shared_upstream(cls, det.config, task, cache, model)
    start = time.perf_counter()
    outliers = task.known_outliers() if cls.requires.outliers else None  # not read for the others
    det.fit(task.train, outliers, validation=task.validation, upstream=upstream)
    return det, info, time.perf_counter() - start


def fit_and_score(method: str, settings: dict[str, Any], task: Task, cache: UpstreamCache,
                  keep: tuple[str, ...] = (), model: BenchModel | None = None) -> CellOutcome:
    """Fit ``method`` (:func:`fit_detector`), score the test images and evaluate them: the OOD
    metrics, the classifier's accuracy, ECE and NLL on the in-distribution test images when the
    detector gives logits and the task their classes, and what the detector learnt that is worth
    a row (its ``summary()``, e.g. a temperature). ``keep``: outputs of the detector returned beside
    the scores (those it gives)."""
    det, info, fit_seconds = fit_detector(method, settings, task, cache, model)
    start = time.perf_counter()
    out = det.outputs(task.test)
    score_seconds = time.perf_counter() - start
    metrics = evaluate(out["score"], task.is_ood)
    if "logits" in out and task.test_class is not None:
        metrics.update(classifier_metrics(out["logits"], task.test_class))
    metrics.update(det.summary())
    total = fit_seconds + (info.fit_seconds if info is not None else 0.0)
    n_outliers = len(task.outliers) if det.requires.outliers and task.outliers is not None else 0
    return CellOutcome(metrics, total, score_seconds, dict(det.config), info, out["score"],
                       {k: np.asarray(out[k]) for k in keep if k in out}, n_outliers)
