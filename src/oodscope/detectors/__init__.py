"""Detectors: one method per file, all with fit / score (higher = more OOD) / save / load."""

from __future__ import annotations

import os
from typing import Any

import torch

from oodscope.detectors.base import Detector, read_model
from oodscope.detectors.bce import BCEDetector
from oodscope.detectors.geom import GeomDetector
from oodscope.detectors.geom_plus import GeomPlusDetector
from oodscope.detectors.layers import LayersDetector
from oodscope.errors import InputError, ModelFileError

DETECTORS: dict[str, type[Detector]] = {
    cls.method: cls for cls in (GeomDetector, GeomPlusDetector, BCEDetector, LayersDetector)
}


def create(method: str, **config: Any) -> Detector:
    if method not in DETECTORS:
        raise InputError(f"unknown method {method!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[method](**config)


def load(path: str | os.PathLike, device: str | None = None) -> Detector:
    """Load a detector saved with ``Detector.save``; verifies the weights' checksum, never unpickles.

    ``device`` (e.g. "cpu") overrides the device the model was trained on; a model trained on a
    GPU loads on the CPU when no GPU is present.
    """
    meta, weights = read_model(path)
    config = meta.get("config")
    if isinstance(config, dict):
        saved = str(config.get("device", "cpu"))
        if device is None and saved.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
        if device is not None:
            config["device"] = device
    cls = DETECTORS.get(meta["method"])
    if cls is None:
        raise ModelFileError(f"{path}: unknown method {meta['method']!r} in model config")
    try:
        return cls._from_meta(meta, weights, os.fspath(path))
    except InputError as e:
        raise ModelFileError(f"{path}: invalid model config ({e})") from None


__all__ = ["DETECTORS", "BCEDetector", "Detector", "GeomDetector", "GeomPlusDetector", "LayersDetector", "create", "load"]
