"""The precisions a model can score in, and which one a model's settings mean.

"float32" (the default: the library, the CLI, the service and the ONNX export compute the same
numbers) or "bfloat16" autocast (an opt-in: about twice the convolution throughput on CPUs with
bfloat16 units, scores moved by its rounding, ~1e-3 relative). The precision of training is the
separate ``amp`` setting. Shared by the detectors (:mod:`oodscope.training.core`) and the
verifiers (:mod:`oodscope.verify.rounding`), which refuse what does not score in float32; no
dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def precision_of(settings: Mapping[str, Any]) -> str:
    """The scoring precision of a model's settings: its ``precision`` setting; a model written
    before that setting existed scored in bfloat16 exactly when its ``amp`` (autocast) was on."""
    if "precision" in settings:
        return str(settings["precision"])
    return "bfloat16" if settings.get("amp", False) else "float32"
