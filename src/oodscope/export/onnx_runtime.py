"""Scoring with an exported ONNX file under onnxruntime: :class:`OnnxScorer` offers the part of a
detector's interface that scoring and serving use (``method``, ``threshold``, ``threshold_rule``,
``fitted`` with the image size and channels, ``score``). This module imports neither torch nor
the rest of oodscope's networks: a program that only scores needs NumPy and onnxruntime."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.errors import InputError, ModelFileError

FORMAT = "oodscope-onnx"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the JSON sidecar of an ONNX file lies: ``<file>.json``."""
    return Path(f"{os.fspath(path)}.json")


def is_onnx_model(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def new_session(data: bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of the serialised graph ``data`` on ``threads`` threads
    (default: onnxruntime's own choice).

    Raises:
        InputError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError("scoring an ONNX graph needs onnxruntime: pip install 'oodscope[onnx]'") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run_batches(session: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Scores (float64) of float32 images ``x`` through ``session``, ``batch_size`` at a time."""
    out = [session.run(["scores"], {"images": x[i: i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64).ravel()


class OnnxScorer:
    """An exported detector: ``score(images)`` runs the ONNX graph with onnxruntime.

    Raises:
        ModelFileError: on construction: missing or foreign sidecar, or an ONNX file whose SHA-256
            differs from the one the sidecar records (modified or truncated).
        InputError: on construction: onnxruntime is not installed.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 256, threads: int | None = None) -> None:
        path = Path(path)
        side = sidecar_path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such ONNX file")
        try:
            meta = json.loads(side.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{side}: missing or unreadable sidecar of the ONNX file ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(f"{side}: not an oodscope ONNX sidecar")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("onnx_sha256"):
            raise ModelFileError(f"{path}: checksum does not match the one recorded in {side.name}: "
                                 "the ONNX file was modified or corrupted")
        self.session = new_session(data, threads)
        self.meta = meta
        self.method = str(meta["method"])
        self.threshold: float | None = meta.get("threshold")
        self.threshold_rule: dict[str, Any] | None = meta.get("threshold_rule")
        self.fitted = {"size": list(meta["image_size"]), "channels": int(meta["channels"]),
                       "trained_on": meta.get("trained_on")}
        self.config: dict[str, Any] = {"format": "onnx", "opset": meta.get("opset")}
        self.precision = "float32"  # the graph computes in float32 (export refuses models that score otherwise)
        self.engine = "onnxruntime"
        self.batch_size = int(batch_size)

    def score(self, x: Any) -> np.ndarray:
        """Scores of uint8 images (0..255) or floats in [0, 1], ``(N, C, H, W)`` at the model's size."""
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[:, None]
        c, (h, w) = self.fitted["channels"], self.fitted["size"]
        if x.ndim != 4 or x.shape[1:] != (c, h, w):
            raise InputError(f"{self.method} (onnx): expected images of shape (N, {c}, {h}, {w}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InputError(f"{self.method} (onnx): no images to score")
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise InputError(f"{self.method} (onnx): NaN or infinite values in the images")
        return run_batches(self.session, x, self.batch_size)
