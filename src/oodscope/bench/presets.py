"""The settings of a benchmark cell: its method's preset, the run's device and overrides, the
cell's variant, the data set's training augmentation, the cell's seed and the progress flag.

Presets live beside each detector (``presets``, see :mod:`oodscope.detectors.base`); this
module only applies them to cells and describes the methods to the protocols.
"""

from __future__ import annotations

from typing import Any

from oodscope.detectors import detector_class, settings_for
from oodscope.detectors.base import PRESET_NAMES
from oodscope.errors import InputError
from oodscope.protocols import Cell, MethodInfo

# Training augmentation of in-distribution images per data set: Okamoto et al. (2021, section 4.1)
# augment CIFAR-10 only (crop-and-resize, colour jitter, grayscale, Gaussian blur), not MNIST.
# It reaches every method with an "augment" setting of these values.
DATASET_AUGMENT: dict[str, str] = {"cifar10": "cifar", "cifar100": "cifar"}


def method_infos(methods: list[str]) -> list[MethodInfo]:
    """What the protocols need to know of each method.

    Raises:
        InputError: no method, an unknown method, or one that cannot run here (missing package).
    """
    if not methods:
        raise InputError("no method given")
    out = []
    for m in methods:
        cls = detector_class(m)
        reason = cls.unavailable()
        if reason:
            raise InputError(reason)
        out.append(MethodInfo(m, cls.requires.outliers, frozenset(cls.defaults), cls.requires.labels))
    return out


def check_grid_settings(methods: list[str], overrides: dict[str, Any], variants: list[dict[str, Any]] | None) -> None:
    """InputError for an override or variant setting that none of ``methods`` has, or a value of
    the wrong type for one that has it."""
    classes = [detector_class(m) for m in methods]
    known = set().union(*(c.defaults for c in classes))
    for what, names in (("settings", overrides), *(("variant settings", v) for v in variants or [])):
        stray = sorted(set(names) - known)
        if stray:
            raise InputError(f"{what} {stray} are not known to any of the methods {methods}")
    for cls in classes:
        for values in (overrides, *(variants or [])):
            cls(**{k: v for k, v in values.items() if k in cls.defaults})


def cell_settings(cell: Cell, device: str | None, overrides: dict[str, Any], progress: bool) -> dict[str, Any]:
    """The detector settings of ``cell`` (see the module docstring).

    Raises:
        InputError: unknown preset or method.
    """
    if cell.preset not in PRESET_NAMES:
        raise InputError(f"unknown preset {cell.preset!r}; known: {', '.join(PRESET_NAMES)}")
    s = settings_for(cell.method, cell.preset, device, overrides)
    known = detector_class(cell.method).defaults
    s.update(cell.variant_settings or {})
    if "augment" in known and "augment" not in overrides:
        s["augment"] = DATASET_AUGMENT.get(cell.dataset, "none")
    if "seed" in known:
        s["seed"] = cell.seed
    if "progress" in known:
        s["progress"] = progress
    return s
