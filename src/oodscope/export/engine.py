"""The engine a loaded model scores with in ``oodscope score``, ``oodscope serve`` and the library's
:func:`oodscope.export.load_scorer`.

A model of ``precision`` float32 whose score is one graph (:meth:`~oodscope.detectors.Detector.export_graph`:
``geom``, ``geom+``, ``bce``, ``layers``, ``msp``, ``energy``, ``max-logit``) computes the same
float32 function whether torch or onnxruntime runs it; onnxruntime runs it 1.6-2.5 times faster
on the CPU (docs/lab/BENCHMARKS.md, "ONNX export against torch"). So with ``engine="auto"`` (the
default) such a model, on the CPU with the ``onnx`` extra installed, is scored by
:class:`GraphScorer`: the graph that ``oodscope export`` would write, built in memory when the
model is loaded and run by onnxruntime. Its scores are those of the exported file exactly and
those of the library's torch scoring (:meth:`Detector.score`) within float32 rounding (the
contract test asks 1e-5 of the scores' scale; docs/lab/BENCHMARKS.md, "Scores you can trust as
stated"). ``engine="torch"`` keeps torch; ``engine="onnxruntime"`` insists, and says why a model
cannot.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from oodscope.detectors import Detector
from oodscope.errors import InputError
from oodscope.export.onnx_export import onnx_graph
from oodscope.export.onnx_runtime import new_session, run_batches

ENGINES: tuple[str, ...] = ("auto", "torch", "onnxruntime")


def graph_unavailable(detector: Detector) -> str | None:
    """Why ``detector`` cannot be scored through its ONNX graph here, or None."""
    missing = [p for p in ("onnx", "onnxruntime") if importlib.util.find_spec(p) is None]
    if missing:
        return f"the packages {missing} are not installed: pip install 'oodscope[onnx]'"
    if detector.precision != "float32":
        return f"it scores in {detector.precision}, and the graph computes in float32"
    if str(detector.config.get("device", "cpu")) != "cpu":
        return f"it runs on {detector.config['device']}, and onnxruntime here on the CPU"
    if "size" not in (detector.fitted or {}):
        return "it was fitted on feature vectors, not images"
    if detector._graph() is None:
        return "its score is not one network graph"
    return None


class GraphScorer:
    """A loaded detector scored through its float32 ONNX graph under onnxruntime: the interface of
    scoring and serving (``method``, ``threshold``, ``threshold_rule``, ``fitted``, ``config``,
    ``precision``, ``engine``, ``score``, ``predict``); inputs are checked as the detector checks
    them. Everything else (``outputs``, gradients, ``save``) is the torch detector's, ``.detector``.
    The session runs the weights as they were when it was built."""

    engine = "onnxruntime"

    def __init__(self, detector: Detector, threads: int | None = None, batch_size: int = 256) -> None:
        self.detector = detector
        self.session = new_session(onnx_graph(detector), threads)
        self.method, self.config, self.fitted = detector.method, detector.config, detector.fitted
        self.threshold, self.threshold_rule = detector.threshold, detector.threshold_rule
        self.precision = detector.precision
        self.batch_size = int(batch_size)

    def score(self, x: Any) -> np.ndarray:
        """Scores of uint8 images (0..255) or floats in [0, 1], ``(N, C, H, W)`` at the model's size."""
        images = self.detector._score_input(x)  # the detector's own checks and messages
        return run_batches(self.session, images.numpy().astype(np.float32, copy=False), self.batch_size)

    predict = Detector.predict  # the detector's rule and message, on the engine's scores


def with_engine(detector: Detector, engine: str = "auto", threads: int | None = None) -> Detector | GraphScorer:
    """``detector`` scored by ``engine``: itself (torch), or a :class:`GraphScorer`.

    Raises:
        InputError: an unknown engine, or ``engine="onnxruntime"`` for a model it cannot run (why).
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "torch":
        return detector
    reason = graph_unavailable(detector)
    if reason is None:
        return GraphScorer(detector, threads)
    if engine == "onnxruntime":
        raise InputError(f"{detector.method}: cannot be scored with onnxruntime: {reason}")
    return detector
