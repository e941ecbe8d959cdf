"""Writing a fitted detector as one ONNX graph plus a JSON sidecar.

The graph (:meth:`oodscope.detectors.Detector.export_graph`) takes float32 images in [0, 1],
``(batch, C, H, W)`` at the fitted size, with a dynamic batch axis, and returns one score per
image; for the GEOM family every transformation and the sum over them are inside it. The sidecar
``<file>.json`` holds what a runtime needs besides the graph: the method, input size and
channels, the normalisation (already applied inside the graph; recorded for reference), the
threshold and how it was chosen, the SHA-256 of the ONNX file and of the source model's weights.
The graph computes in float32, as the library scores a float32 model (the default ``precision``);
a model that scores in bfloat16 is refused, since its export would not score as it does.
Both files are written to temporary names and renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from oodscope.atomic import write_text_atomic
from oodscope.detectors import Detector
from oodscope.errors import InputError
from oodscope.export.onnx_runtime import FORMAT, sidecar_path
from oodscope.pipeline.files import model_geometry

OPSET = 17


def onnx_graph(detector: Detector) -> bytes:
    """``detector``'s whole score as a serialised ONNX graph (float32 images in [0, 1] at the fitted
    size, dynamic batch axis -> scores).

    Raises:
        InputError: the detector is not exportable (named), was fitted on features, scores in
            another precision than the graph's float32, or the ``onnx`` package is missing.
    """
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise InputError("ONNX export needs the onnx package: pip install 'oodscope[onnx]'") from None
    if detector.precision != "float32":
        raise InputError(f"{detector.method}: this model scores in {detector.precision} and the ONNX graph computes in "
                         "float32, so the export would score differently; fit a float32 model (the default, or "
                         "--set precision=float32) to export it")
    size, channels = model_geometry(detector)
    graph = detector.export_graph()
    example = torch.rand(2, channels, *size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), buf, input_names=["images"], output_names=["scores"],
                          dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    return buf.getvalue()


def export_onnx(detector: Detector, path: str | os.PathLike[str], weights_sha256: str | None = None) -> dict[str, Any]:
    """Export ``detector``'s score to the ONNX file ``path`` (and its sidecar); returns the sidecar.

    Raises:
        InputError: as :func:`onnx_graph`.
    """
    data = onnx_graph(detector)
    size, channels = model_geometry(detector)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        Path(tmp).write_bytes(data)
        meta = {
            "format": FORMAT, "version": 1, "method": detector.method, "image_size": list(size), "channels": channels,
            "input": "float32 (batch, channels, height, width) in [0, 1]; normalisation is inside the graph",
            "normalisation": {k: detector.fitted.get(k) for k in ("mean", "std")},
            "trained_on": detector.fitted.get("trained_on"),
            "threshold": detector.threshold, "threshold_rule": detector.threshold_rule,  # calibration scores: p-values
            "onnx_sha256": hashlib.sha256(data).hexdigest(), "weights_sha256": weights_sha256, "opset": OPSET,
            "precision": "float32",
        }
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_text_atomic(sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True))
    return meta
