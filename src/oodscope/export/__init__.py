"""Exporting a fitted detector's whole score to ONNX, and scoring with the exported file under
onnxruntime (needs the ``onnx`` extra: ``pip install 'oodscope[onnx]'``).

Public API::

    from oodscope.export import export_onnx, OnnxScorer, load_scorer
    export_onnx(detector, "model.onnx")            # writes model.onnx and model.onnx.json
    scorer = OnnxScorer("model.onnx")              # .score(images), .threshold, .method
    scorer = load_scorer(path)                     # a saved model directory or an ONNX file
    scorer = with_engine(detector)                 # a float32 graph-shaped detector under onnxruntime

The names are imported on first use, so ``oodscope.export.onnx_runtime`` (NumPy and onnxruntime
only) loads without torch.
"""

from importlib import import_module
from typing import Any

_WHERE = {"export_onnx": "onnx_export", "OnnxScorer": "onnx_runtime", "is_onnx_model": "onnx_runtime",
          "identity": "loading", "load_scorer": "loading", "engine_of": "loading", "with_engine": "engine",
          "GraphScorer": "engine", "ENGINES": "engine"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"oodscope.export.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'oodscope.export' has no attribute {name!r}")
