"""Named detector settings for benchmarks and the demo: ``PRESETS`` and :func:`preset_settings`.

``PRESETS[name]`` maps a method to settings overrides on top of that method's
``defaults``. The key ``"*"`` holds settings meant for every method; each method
receives only the ``"*"`` settings it accepts (its ``defaults`` keys), so
``g_steps`` reaches ``layers`` but not ``geom``. Method-named entries are applied
after ``"*"`` and must name settings the method knows.

* ``cpu``: the detectors' defaults, which are the CPU settings.
* ``paper``: Okamoto et al. (2021): WRN-16-4, dropout 0.3, the 72 GEOM transformations,
  20 epochs, batch 128, Adam 1e-3, 5000 steps for g, on CUDA.
* ``smoke``: tiny and fast, for tests.
* ``demo``: sized for scikit-learn's 8x8 digits (``oodscope demo``).
"""

from __future__ import annotations

import copy
from typing import Any

from oodscope.detectors import DETECTORS
from oodscope.errors import InputError

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"*": {}, "geom": {}, "layers": {}},
    "paper": {
        "*": {
            "backbone": "wrn",
            "depth": 16,
            "width": 4,
            "dropout": 0.3,
            "transforms": "geom72",
            "epochs": 20,
            "batch_size": 128,
            "lr": 1e-3,
            "g_steps": 5000,
            "device": "cuda",
        },
        # the paper's g_theta: all four taps, no outlier augmentation or mixup
        "layers": {"taps": ["z1", "z2", "z3", "z4"], "g_mixup": 0.0, "g_augment": "none"},
    },
    "smoke": {"*": {"widths": [8, 8, 8], "epochs": 1, "g_steps": 5, "transforms": "rot4"}},
    "demo": {
        "*": {
            "widths": [16, 32, 64],
            "epochs": 60,
            "batch_size": 64,
            "transforms": "flip-rot4",
            "g_steps": 200,
            "g_batch": 64,
            "head_hidden": 256,
        },
    },
}


# Training augmentation of in-distribution images per data set: Okamoto et al. (2021, section 4.1)
# augment CIFAR-10 only (crop-and-resize, colour jitter, grayscale, Gaussian blur), not MNIST.
DATASET_AUGMENT: dict[str, str] = {"cifar10": "cifar", "cifar100": "cifar"}


def preset_settings(
    preset: str,
    method: str,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings ``method`` gets under ``preset``: ``"*"`` filtered to the method's
    ``defaults`` keys, then the method's own entry, then ``device`` (if given), then
    ``overrides`` (also filtered to keys the method knows).

    Raises:
        InputError: unknown preset or method, or a method entry naming an unknown setting.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    if method not in DETECTORS:
        raise InputError(f"unknown method {method!r}; known: {', '.join(DETECTORS)}")
    known = DETECTORS[method].defaults
    entry = PRESETS[preset]
    out = {k: copy.deepcopy(v) for k, v in entry.get("*", {}).items() if k in known}
    own = entry.get(method, {})
    unknown = sorted(set(own) - set(known))
    if unknown:
        raise InputError(f"preset {preset!r}: method {method!r} has no settings {unknown}")
    out.update(copy.deepcopy(own))
    if device is not None and "device" in known:
        out["device"] = device
    for k, v in (overrides or {}).items():
        if k in known:
            out[k] = copy.deepcopy(v)
    return out
