"""Detectors: one method per file, all with fit / score (higher = more OOD) / save / load."""

from __future__ import annotations

import os
from typing import Any

from oodscope.detectors.base import Detector, read_model
from oodscope.detectors.geom import GeomDetector
from oodscope.detectors.layers import LayersDetector
from oodscope.errors import InputError, ModelFileError

DETECTORS: dict[str, type[Detector]] = {cls.method: cls for cls in (GeomDetector, LayersDetector)}


def create(method: str, **config: Any) -> Detector:
    if method not in DETECTORS:
        raise InputError(f"unknown method {method!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[method](**config)


def load(path: str | os.PathLike) -> Detector:
    """Load a detector saved with ``Detector.save``; verifies the weights' checksum, never unpickles."""
    meta, weights = read_model(path)
    cls = DETECTORS.get(meta["method"])
    if cls is None:
        raise ModelFileError(f"{path}: unknown method {meta['method']!r} in model config")
    try:
        return cls._from_meta(meta, weights, os.fspath(path))
    except InputError as e:
        raise ModelFileError(f"{path}: invalid model config ({e})") from None


__all__ = ["DETECTORS", "Detector", "GeomDetector", "LayersDetector", "create", "load"]
