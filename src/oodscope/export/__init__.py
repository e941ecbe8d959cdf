"""Exporting a fitted detector's whole score to ONNX, and scoring with the exported file under
onnxruntime, without torch (needs the ``onnx`` extra: ``pip install 'oodscope[onnx]'``).

Public API::

    from oodscope.export import export_onnx, OnnxScorer
    export_onnx(detector, "model.onnx")            # writes model.onnx and model.onnx.json
    scorer = OnnxScorer("model.onnx")              # .score(images), .threshold, .method
    scorer = load_scorer(path)                     # a saved model directory or an ONNX file
"""

from oodscope.export.loading import identity, load_scorer
from oodscope.export.onnx_export import export_onnx
from oodscope.export.onnx_runtime import OnnxScorer, is_onnx_model

__all__ = ["OnnxScorer", "export_onnx", "identity", "is_onnx_model", "load_scorer"]
