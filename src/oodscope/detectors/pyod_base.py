"""Classic detectors of PyOD (Zhao, Nasrullah & Li, JMLR 2019) on flattened pixels or feature
vectors, behind the oodscope contract, as peers on exactly the same splits as our detectors.

PyOD is an optional dependency (``pip install 'oodscope[peers]'``). Its ``decision_function``
is higher for more outlying inputs, as oodscope's score. A saved peer holds its training
vectors (safetensors) and settings, never a pickle: loading refits the PyOD model on them,
which is deterministic (``random_state`` is the seed), so scores are identical after a reload.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.errors import ModelFileError

PEER_PRESETS: dict[str, dict[str, Any]] = {"cpu": {}, "paper": {}, "smoke": {}, "demo": {}}
DATA = "data"  # prefix of the training vectors in a saved model


class PyODDetector(Detector):
    """A PyOD model (``pyod_model``, a dotted class path) built from ``_model_kwargs()``."""

    requires = Requires(inputs="features", package="pyod", extra="peers")
    presets = PEER_PRESETS
    pyod_model: ClassVar[str] = ""
    order = 60

    def _model_kwargs(self) -> dict[str, Any]:
        return {}

    def _make(self) -> Any:
        module, _, name = self.pyod_model.rpartition(".")
        return getattr(importlib.import_module(module), name)(**self._model_kwargs())

    def _fit(self, data: FitData) -> None:
        self.train_vectors = np.ascontiguousarray(data.x, dtype=np.float32)
        self.model = self._make().fit(self.train_vectors)

    def _score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(x), dtype=np.float64)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"{DATA}.train": torch.from_numpy(self.train_vectors)}

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        train = weights.get(f"{DATA}.train")
        if train is None or set(weights) != {f"{DATA}.train"}:
            raise ModelFileError(f"{path}: expected exactly the tensor {DATA}.train in the weights file")
        if train.ndim != 2 or train.shape[1] != self.fitted["dim"]:
            raise ModelFileError(f"{path}: training vectors of shape {tuple(train.shape)} do not match "
                                 f"{self.fitted['dim']} features")
        reason = self.unavailable()
        if reason:
            raise ModelFileError(f"{path}: {reason}")
        self.train_vectors = train.numpy()
        self.model = self._make().fit(self.train_vectors)
