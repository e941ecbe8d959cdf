"""Loading either kind of model file: a saved model directory (torch) or an exported ONNX file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oodscope.detectors import load
from oodscope.export.onnx_runtime import OnnxScorer, is_onnx_model


def load_scorer(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """A detector loaded from a model directory, or an :class:`OnnxScorer` for a ``.onnx`` file;
    both verified against their recorded checksums."""
    return OnnxScorer(path, threads=threads) if is_onnx_model(path) else load(path)


def identity(path: str | os.PathLike[str], scorer: Any) -> dict[str, Any]:
    """What names the model: its method, the SHA-256 of its weights (and of the ONNX file)."""
    if isinstance(scorer, OnnxScorer):
        return {"method": scorer.method, "weights_sha256": scorer.meta.get("weights_sha256"),
                "onnx_sha256": scorer.meta["onnx_sha256"]}
    return {"method": scorer.method, "weights_sha256": json.loads((Path(path) / "config.json").read_text())["weights_sha256"]}
