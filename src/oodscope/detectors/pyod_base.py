"""Classic detectors of PyOD (Zhao, Nasrullah & Li, JMLR 2019) on flattened pixels or feature
vectors, behind the oodscope contract, as peers on exactly the same splits as our detectors.

PyOD is an optional dependency (``pip install 'oodscope[peers]'``). Its ``decision_function``
is higher for more outlying inputs, as oodscope's score. A saved peer holds its training
vectors (safetensors) and settings, never a pickle: loading refits the PyOD model on them,
which is deterministic (``random_state`` is the seed), so scores are identical after a reload.

On a model of yours (``fit(images, upstream=ModelAdapter(model, penultimate=...))``, images in
memory or a stream of batches) a peer fits and scores the model's penultimate feature vectors: the
image-level use of a pretrained backbone, with PyOD's detector in place of a Gaussian or kNN. It
then takes images to score, and a saved peer keeps the model's fingerprint (and program) as the
other detectors on a model of yours do. PyOD keeps every training vector (N x D floats).
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.data.stream import ImageStream
from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.detectors.feature_base import adapter_features
from oodscope.errors import InputError, ModelFileError
from oodscope.inputs import as_images
from oodscope.upstream.adapter import ModelAdapter

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

    def fit(self, train: Any, outliers: Any = None, *, labels: Any = None, validation: Any = None,
            validation_labels: Any = None, upstream: Any = None) -> PyODDetector:
        """As :meth:`Detector.fit`; with ``upstream`` a :class:`ModelAdapter`, on the penultimate
        features it gives ``train`` (images, or a stream of batches)."""
        if upstream is None:
            return super().fit(train, outliers, labels=labels, validation=validation, validation_labels=validation_labels)
        if not isinstance(upstream, ModelAdapter):
            raise InputError(f"{self.method}: reads feature vectors, or a model of yours (upstream=ModelAdapter(...)); "
                             f"got {type(upstream).__name__}")
        stream = isinstance(train, (ImageStream, torch.utils.data.DataLoader))
        x = (train if isinstance(train, ImageStream) else ImageStream(train, "DataLoader")) if stream \
            else as_images(train, "training images")
        adapter = upstream if upstream.fitted is not None else upstream.fit(x)
        feats = torch.cat(list(adapter_features(adapter, x))).numpy()
        super().fit(feats)
        self.upstream = adapter
        self.fitted["upstream"] = adapter.fitted
        return self

    def _score_input(self, x: Any) -> Any:
        if not isinstance(self.upstream, ModelAdapter):
            return super()._score_input(x)
        t = self._checked_images(x, self.upstream.fitted)  # the images the model's adapter was fitted on
        return torch.cat(list(adapter_features(self.upstream, t))).numpy() if len(t) else np.zeros((0, self.fitted["dim"]))

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
