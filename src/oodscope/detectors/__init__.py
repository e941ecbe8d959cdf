"""Detectors: one method per file, all with fit / score (higher = more OOD) / save / load.

Each detector registers itself (``@register``) in the file that defines it; importing this
package imports every module in it, so a new detector is one new file here. Use
:func:`registry` to list them, :func:`create` to build one by name and :func:`load` to read a
saved one (safetensors + JSON, checksummed, never unpickled). :mod:`oodscope.detectors.catalogue`
describes them from their declarations (paper, needs, ONNX export, every setting with its default
and one-line description): ``oodscope methods`` and ``oodscope describe METHOD``.
"""

from __future__ import annotations

import importlib
import pkgutil

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.registry import create, detector_class, load, register, registry, settings_for
from oodscope.upstream.base import Upstream, UpstreamCache, UpstreamInfo, default_cache_dir


def _discover() -> None:
    """Import every module of this package, so that each detector registers itself."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_discover()

from oodscope.detectors.bce import BCEDetector  # noqa: E402
from oodscope.detectors.geom import GeomDetector  # noqa: E402
from oodscope.detectors.geom_plus import GeomPlusDetector  # noqa: E402
from oodscope.detectors.layers import LayersDetector  # noqa: E402

__all__ = [
    "BCEDetector",
    "Detector",
    "FitData",
    "GeomDetector",
    "GeomPlusDetector",
    "LayersDetector",
    "Requires",
    "Upstream",
    "UpstreamCache",
    "UpstreamInfo",
    "create",
    "default_cache_dir",
    "detector_class",
    "load",
    "register",
    "registry",
    "settings_for",
]
