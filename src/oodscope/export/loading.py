"""Loading either kind of model file: a saved model directory (torch) or an exported ONNX file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oodscope.detectors import load
from oodscope.errors import InputError
from oodscope.export.onnx_runtime import OnnxScorer, is_onnx_model


def load_scorer(path: str | os.PathLike[str], threads: int | None = None, engine: str = "auto") -> Any:
    """A detector loaded from a model directory (scored by ``engine``:
    :func:`oodscope.export.engine.with_engine`), or an :class:`OnnxScorer` for a ``.onnx`` file;
    both verified against their recorded checksums."""
    if is_onnx_model(path):
        if engine == "torch":
            raise InputError(f"{path}: an ONNX file is scored with onnxruntime; --engine torch needs a model directory")
        return OnnxScorer(path, threads=threads)
    from oodscope.export.engine import with_engine  # here: it imports torch, which an ONNX file does not need

    return with_engine(load(path), engine, threads)


def with_classes(path: str | os.PathLike[str], scorer: Any, threads: int | None = None, engine: str = "auto") -> Any:
    """A scorer of the model at ``path`` that gives each image's predicted class (``outputs``, for
    class-conditional p-values): ``scorer`` itself if it does, else, for a model directory that
    ``engine`` "auto" put on onnxruntime (whose graph gives scores only), the model under torch.

    Raises:
        InputError: an ONNX file, or a model directory held to onnxruntime by ``engine``.
    """
    if getattr(scorer, "outputs", None) is not None:
        return scorer
    if engine != "auto" or is_onnx_model(path):
        raise InputError("class-conditional p-values need the model's predicted classes, which the onnxruntime "
                         "engine does not give: use the model directory with --engine torch")
    return load_scorer(path, threads, "torch")


def engine_of(scorer: Any) -> str:
    """The engine a loaded scorer runs: "onnxruntime" or "torch"."""
    return str(getattr(scorer, "engine", "torch"))


def identity(path: str | os.PathLike[str], scorer: Any) -> dict[str, Any]:
    """What names the model: its method, the SHA-256 of its weights (and of the ONNX file)."""
    if isinstance(scorer, OnnxScorer):
        return {"method": scorer.method, "weights_sha256": scorer.meta.get("weights_sha256"),
                "onnx_sha256": scorer.meta["onnx_sha256"]}
    return {"method": scorer.method, "weights_sha256": json.loads((Path(path) / "config.json").read_text())["weights_sha256"]}
