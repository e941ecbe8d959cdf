"""Fitting and scoring the detector of one cell, sharing GEOM's trained f between cells.

A fitted :class:`~oodscope.detectors.GeomDetector` is kept in a :class:`BaseCache` under its
settings. A ``geom`` cell with those settings reuses it (and its test scores); a detector
with ``use_base`` (``layers``) whose GEOM settings match reuses it as its frozen f and only
trains its own head. Its ``fit_seconds`` then counts f's training plus the head's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oodscope.data import ImageSet
from oodscope.detectors import GeomDetector, create
from oodscope.metrics import evaluate

_IGNORED = ("progress",)  # settings that do not change what is learnt


def settings_key(settings: dict[str, Any]) -> str:
    """A hashable identity of detector settings, ignoring display-only ones."""
    return json.dumps({k: v for k, v in settings.items() if k not in _IGNORED}, sort_keys=True)


@dataclass
class BaseEntry:
    """A fitted GEOM f, how long it took to train, and its test scores once computed."""

    detector: GeomDetector
    fit_seconds: float
    scores: np.ndarray | None = None
    score_seconds: float = 0.0


@dataclass
class BaseCache:
    """Fitted GEOM detectors of the current (class, seed), keyed by :func:`settings_key`."""

    scope: Any = None
    entries: dict[str, BaseEntry] = field(default_factory=dict)

    def enter(self, scope: Any) -> None:
        """Forget every entry when moving to another (data set, class, seed, ...)."""
        if scope != self.scope:
            self.scope, self.entries = scope, {}

    def get(self, settings: dict[str, Any], train: ImageSet) -> tuple[BaseEntry, bool]:
        """The entry for these GEOM settings, training f on ``train`` if needed.
        Returns (entry, reused)."""
        key = settings_key(settings)
        if key in self.entries:
            return self.entries[key], True
        start = time.perf_counter()
        det = GeomDetector(**settings).fit(train)
        entry = BaseEntry(det, time.perf_counter() - start)
        self.entries[key] = entry
        return entry, False


@dataclass
class CellOutcome:
    """Metrics, timings and test scores of one fitted and scored cell."""

    metrics: dict[str, float]
    fit_seconds: float
    score_seconds: float
    settings: dict[str, Any]
    base_fit_seconds: float | None = None
    shared_base: bool = False
    scores: np.ndarray | None = None


def fit_and_score(
    method: str,
    settings: dict[str, Any],
    train: ImageSet,
    outliers: ImageSet,
    test: ImageSet,
    is_ood: np.ndarray,
    cache: BaseCache,
) -> CellOutcome:
    """Fit ``method`` with ``settings`` on ``train`` (+ ``outliers``), score ``test``, evaluate."""
    det = create(method, **settings)
    if type(det) is GeomDetector:
        entry, reused = cache.get(det.config, train)
        if entry.scores is None:
            start = time.perf_counter()
            entry.scores = entry.detector.score(test)
            entry.score_seconds = time.perf_counter() - start
        return CellOutcome(evaluate(entry.scores, is_ood), entry.fit_seconds, entry.score_seconds,
                           dict(entry.detector.config), entry.fit_seconds, reused, entry.scores)
    base_seconds: float | None = None
    if hasattr(det, "use_base") and hasattr(det, "geom_config"):
        entry, reused = cache.get(det.geom_config(), train)
        det.use_base(entry.detector)
        base_seconds = entry.fit_seconds
    start = time.perf_counter()
    det.fit(train, outliers)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = det.score(test)
    score_seconds = time.perf_counter() - start
    total_fit = fit_seconds + (base_seconds or 0.0)
    return CellOutcome(evaluate(scores, is_ood), total_fit, score_seconds, dict(det.config),
                       base_seconds, base_seconds is not None, scores)
