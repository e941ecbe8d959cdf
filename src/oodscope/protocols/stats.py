"""Per-channel normalisation statistics of in-distribution training images."""

from __future__ import annotations

import numpy as np

from oodscope.data import ImageSet


def normalization_stats(train: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``train``'s pixels, scaled to [0, 1].

    Only the in-distribution training images may be used: statistics taken from test
    images or outliers would leak information about them. Detectors compute exactly
    this at fit time from the training images they are given (``Detector.fit``: the
    sample standard deviation, divisor ``N*H*W - 1``, floored at 1e-3) and store it with
    the model, so this function is for inspection and for code outside the detectors.

    Returns:
        ``(mean, std)``, float64 arrays of shape ``(C,)``.
    """
    x = train.images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = np.maximum(x.std(axis=(0, 2, 3), ddof=1 if x[:, 0].size > 1 else 0), 1e-3)
    return mean, std
