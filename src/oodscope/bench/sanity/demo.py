"""The ``oodscope demo`` experiment: one-class OOD detection on scikit-learn's 8x8 digits.

For each in-distribution digit c, every registered detector that works one-class (it needs no
class labels) and can run here (its optional package is installed) is trained on the training
images of c and evaluated (AUROC) on the test split. Every detector is also given
``n_outliers`` training images of the held-out digit (c + 1) % 10 as known outliers
(detectors without outlier exposure, such as ``geom``, ignore them); that digit is then
removed from the test set, for every detector alike, so the test OOD images never include
the class the outliers came from. The ``demo`` preset sizes the networks for 8x8 images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oodscope.bench.fitting import fit_and_score
from oodscope.data import load
from oodscope.detectors import UpstreamCache, registry, settings_for
from oodscope.progress import progress as progress_bar
from oodscope.protocols import Task, sample_outliers, split_one_class

DEMO_DATASET = "digits"


@dataclass
class DemoResult:
    """AUROC (percent) per method and class, plus each method's fit + score seconds
    (a method reading a shared network, such as GEOM's f, counts its training too, as the
    benchmark does)."""

    methods: list[str]
    classes: list[int]
    auroc: dict[str, dict[int, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def mean(self, method: str) -> float:
        """Mean AUROC of ``method`` over the classes."""
        return float(np.mean([self.auroc[method][c] for c in self.classes]))


def demo_methods() -> list[str]:
    """The registered detectors the demo runs: those needing no class labels and able to run here."""
    return [m for m, cls in registry().items() if not cls.requires.labels and cls.unavailable() is None]


def demo_settings(method: str, seed: int) -> dict[str, Any]:
    """``method``'s ``demo`` preset, with the seed and without progress bars."""
    settings = settings_for(method, "demo")
    known = registry()[method].defaults
    settings.update({k: v for k, v in (("seed", seed), ("progress", False)) if k in known})
    return settings


def outlier_class(id_class: int, n_classes: int = 10) -> int:
    """The held-out class whose images are the known outliers of ``id_class``."""
    return (id_class + 1) % n_classes


def run_demo(
    classes: list[int] | None = None,
    methods: list[str] | None = None,
    n_outliers: int = 16,
    seed: int = 0,
    data_root: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_cell: Callable[[str, int, float], None] | None = None,
) -> DemoResult:
    """Run the demo (see the module docstring) and return the AUROC table.

    ``on_cell(method, id_class, auroc)`` is called after each finished (class, method).
    """
    methods = list(methods or demo_methods())
    train_all = load(DEMO_DATASET, "train", root=data_root)
    test_all = load(DEMO_DATASET, "test", root=data_root)
    n_classes = len(train_all.classes)
    classes = list(range(n_classes)) if classes is None else list(classes)
    result = DemoResult(methods, classes, {m: {} for m in methods}, {m: 0.0 for m in methods})
    bar = progress_bar(len(classes) * len(methods), "demo", progress, unit="fit")
    try:
        for c in classes:
            held_out = outlier_class(c, n_classes)
            split = split_one_class(train_all, test_all, c, DEMO_DATASET)
            pool = train_all.subset(train_all.labels == held_out)
            outliers = sample_outliers(pool, n_outliers, seed, like=split.train)
            keep = test_all.labels != held_out
            task = Task(split.train, test_all.subset(keep), split.is_ood[keep], outliers)
            cache = UpstreamCache(None)  # in memory: f is shared within a class, nothing is written
            for m in methods:
                out = fit_and_score(m, demo_settings(m, seed), task, cache)
                result.auroc[m][c] = out.metrics["auroc"]
                result.seconds[m] += out.fit_seconds + out.score_seconds
                bar.update(1)
                if on_cell is not None:
                    on_cell(m, c, out.metrics["auroc"])
    finally:
        bar.close()
    return result
