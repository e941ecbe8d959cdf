"""Sampling known outliers (outlier exposure) from an auxiliary data set."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from oodscope.data import ImageSet, convert
from oodscope.errors import DataError


def sample_outliers(
    aux: ImageSet,
    n: int | None,
    seed: int,
    k_classes: int | None = None,
    like: ImageSet | None = None,
    exclude_classes: Iterable[int] = (),
) -> ImageSet:
    """``n`` images drawn without replacement from ``aux`` (``None``: all eligible images).

    Eligible images are those whose label is not in ``exclude_classes``; with
    ``k_classes``, only images of ``k_classes`` classes chosen at random among the
    eligible ones. All randomness comes from ``numpy.random.default_rng(seed)``
    (classes first, then images), so the same arguments always give the same
    images, returned in ascending index order. With ``like``, the images are
    converted to ``like``'s size and channel count (:func:`oodscope.data.convert`).

    Raises:
        DataError: ``n`` < 1 or larger than the eligible images, ``k_classes`` < 1 or
            larger than the number of eligible classes, or nothing is eligible.
    """
    rng = np.random.default_rng(seed)
    excluded = {int(c) for c in exclude_classes}
    eligible = ~np.isin(aux.labels, sorted(excluded)) if excluded else np.ones(len(aux), dtype=bool)
    name = aux.name or "auxiliary set"
    if k_classes is not None:
        classes = np.unique(aux.labels[eligible])
        if isinstance(k_classes, bool) or not 1 <= int(k_classes) <= len(classes):
            raise DataError(f"{name}: cannot choose {k_classes!r} outlier classes; it has {len(classes)} eligible classes")
        chosen = rng.choice(classes, size=int(k_classes), replace=False)
        eligible &= np.isin(aux.labels, chosen)
    pool = np.flatnonzero(eligible)
    if len(pool) == 0:
        raise DataError(f"{name}: no images left to sample outliers from")
    if n is None:
        idx = pool
    else:
        if isinstance(n, bool) or int(n) < 1:
            raise DataError(f"number of outliers must be at least 1 (or None for all), got {n!r}")
        if int(n) > len(pool):
            raise DataError(f"{name}: asked for {n} outliers but only {len(pool)} images are available")
        idx = np.sort(rng.choice(pool, size=int(n), replace=False))
    out = aux.subset(idx)
    if like is not None:
        out.images = convert(out.images, tuple(like.images.shape[2:]), int(like.images.shape[1]))
    return out
