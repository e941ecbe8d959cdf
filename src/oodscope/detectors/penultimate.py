"""What the post hoc detectors on a classifier's penultimate features share: the vector h(x) that
the last linear layer reads, that layer's weight W (K x D) and bias b (logits = W h + b), and the
features of a sample of the labelled training images, for oodscope's classifiers and a model of
yours (:class:`~oodscope.upstream.adapter.ModelAdapter` naming ``penultimate`` and ``head``) alike.

The methods built on it read these quantities as their papers define them: feature shaping
before the head (ReAct, Sun, Guo & Li, NeurIPS 2021; ASH, Djurisic et al., ICLR 2023; SCALE, Xu
et al., ICLR 2024; DICE, Sun & Li, ECCV 2022), the geometry of the features against the head (ViM,
Wang et al., CVPR 2022; fDBD, Liu & Qin, ICML 2024) or against the training features (KNN, Sun et
al., ICML 2022; RMDS, Ren et al., 2021; SHE, Zhang et al., ICLR 2023; NNGuide, Park et al., ICCV
2023).

On oodscope's own classifier the score exports to ONNX as one graph (the network's taps, the head
and the fitted statistics as constants) where ``feature_score`` traces; on a model of yours, export
the model yourself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.data.stream import ImageStream
from oodscope.detectors.base import FitData
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.errors import InputError, ModelFileError
from oodscope.inputs import as_images
from oodscope.model_files import load_modules
from oodscope.training.core import batches
from oodscope.upstream.adapter import ModelAdapter
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.upstream.graph import Normalized

PENULTIMATE_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "fit_samples": 10000}
PENULTIMATE_HELP: dict[str, str] = {"fit_samples": "training images whose features are fitted on, drawn with seed (0: all)"}


class PenultimateDetector(LogitScoreDetector):
    """Subclasses implement :meth:`feature_score` (and :meth:`fit_features` when they keep
    statistics of the training features, stored as tensors named in ``state``).

    ``fit_samples`` training images (0: all of them), drawn with ``seed``, give the training
    features: that bounds the memory and time of fitting on a large training set.
    """

    defaults = PENULTIMATE_DEFAULTS
    help = PENULTIMATE_HELP
    state: ClassVar[tuple[str, ...]] = ()  # names of the fitted tensors (``self.<name>``), saved and checked
    reads_training: ClassVar[bool] = True  # False: the score needs no training features (no fit_samples)
    exportable: ClassVar[bool] = True  # feature_score traces to ONNX (export_onnx)

    def _check_config(self) -> None:
        super()._check_config()
        if self.reads_training and int(self.config["fit_samples"]) < 0:
            raise InputError(f"{self.method}: fit_samples must be >= 0, got {self.config['fit_samples']}")

    def _stream_sample(self) -> int:
        """A sample of ``fit_samples`` images drawn from a stream; with ``fit_samples`` = 0 (all),
        ``_fit`` reads the features of every image batch by batch (N x D floats, never the images)."""
        return int(self.config["fit_samples"]) if self.reads_training else 0

    # -- what the detectors read -----------------------------------------------------------
    def head_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last linear layer's weight W (K x D) and bias b (K; zeros without one), float64 on the CPU.

        Raises:
            InputError: a model of yours whose head was not named.
        """
        head = getattr(self, "_traced_head", None) or self.upstream.head
        if head is None:
            raise InputError(f"{self.method}: reads the final linear layer: name it (head=, e.g. 'fc')")
        w = head.weight.detach().double().cpu()
        b = head.bias.detach().double().cpu() if getattr(head, "bias", None) is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        return w, b

    def penultimate_batches(self, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features h (n, D), logits (n, K)), float32 on the CPU, batch by batch, one forward pass each."""
        name = self.upstream.penultimate
        with torch.no_grad():
            for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
                taps = self.upstream.taps(x[idx])
                yield taps[name].float().flatten(1).cpu(), taps["logits"].float().cpu()

    def penultimate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of all of ``x``."""
        parts = list(self.penultimate_batches(x))
        if not parts:
            return torch.zeros(0, 0), torch.zeros(0, int(self.upstream.fitted["classes"]))
        return torch.cat([f for f, _ in parts]), torch.cat([z for _, z in parts])

    def _stream_features(self, stream: ImageStream) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, logits and labels of every image of a stream of (images, labels) batches."""
        parts = []
        for images, y in stream.pairs():
            if y is None:
                raise InputError(f"{self.method}: needs the class labels of the training images; give batches of "
                                 "(images, labels) or a folder with one sub-folder per class")
            xb = as_images(images, "training images")
            parts.append((*self.penultimate(xb), torch.as_tensor(np.asarray(y)).long().reshape(-1)))
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    # -- hooks -----------------------------------------------------------------------------
    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep what the score needs from the training features (float32), logits and labels."""

    def fit_head(self) -> None:
        """What a detector that reads no training features learns at fit time (from the head, say)."""

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """W h + b of (shaped) features (float64)."""
        w, b = self.head_parameters()
        return features.double() @ w.T + b

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The score, higher = more out-of-distribution, of one batch (float64)."""
        raise NotImplementedError

    # -- the detector contract -------------------------------------------------------------
    def _fit(self, data: FitData) -> None:
        if not self.reads_training:
            self.fit_head()
            self.fitted["state_shapes"] = {}
            return
        x, labels = data.x, data.labels
        if isinstance(x, ImageStream):
            features, logits, labels = self._stream_features(x)
        else:
            n = int(self.config["fit_samples"])
            if 0 < n < len(x):
                keep = np.sort(np.random.default_rng(int(self.config["seed"])).choice(len(x), n, replace=False))
                x, labels = x[torch.from_numpy(keep)], labels[torch.from_numpy(keep)]
            features, logits = self.penultimate(x)
        self.fit_features(features, logits, labels)
        self.fitted["state_shapes"] = {k: list(getattr(self, k).shape) for k in self.state}

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        scores, logits = [], []
        for f, z in self.penultimate_batches(x):
            scores.append(self.feature_score(f, z).double().cpu())
            logits.append(z)
        if not scores:
            return {"score": np.zeros(0), "logits": np.zeros((0, int(self.upstream.fitted["classes"])), np.float32)}
        return {"score": torch.cat(scores).numpy(), "logits": torch.cat(logits).numpy()}

    @classmethod
    def scores_as_one_graph(cls) -> bool:
        """Whether :meth:`feature_score` traces to ONNX (``exportable``)."""
        return cls.exportable

    def _graph(self) -> torch.nn.Module | None:
        """oodscope's classifier and :meth:`feature_score` as one module (for ONNX export), where the
        score is a traceable torch function of the features and logits (``exportable``)."""
        if not self.scores_as_one_graph() or isinstance(self.upstream, ModelAdapter):
            return None
        name = self.upstream.penultimate

        def fn(parts: dict[str, torch.nn.Module], xn: torch.Tensor) -> torch.Tensor:
            taps = parts["net"].taps(xn)
            self._traced_head = parts["net"].fc  # the graph's own head, not the detector's network
            try:
                return self.feature_score(taps[name].float().flatten(1), taps["logits"].float())
            finally:
                self._traced_head = None

        return Normalized({"net": self.upstream.net}, self.upstream.fitted, fn)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"{self.prefix}.{k}": getattr(self, k) for k in self.state}

    @property
    def prefix(self) -> str:
        return self.method.replace("-", "_")

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        load_modules(self.all_modules(), weights, path, extra=(self.prefix,) if self.state else ())
        shapes = self.fitted.get("state_shapes", {})
        for k in self.state:
            t = weights.get(f"{self.prefix}.{k}")
            if t is None or list(t.shape) != list(shapes.get(k, [])):
                raise ModelFileError(f"{path}: expected the tensor {self.prefix}.{k} of shape {shapes.get(k)}")
            setattr(self, k, t)


def kept_units(d: int, percentile: float) -> int:
    """k = d - round(d p / 100), how many entries of a d-vector pruning at percentile p keeps
    (NumPy's round, as the authors' code of ASH and SCALE)."""
    return d - int(np.round(d * percentile / 100.0))


class ShapingDetector(PenultimateDetector):
    """Feature shaping per image at a ``percentile`` of its own entries (ASH, SCALE): nothing is
    learnt from the training images; fitting checks that the percentile keeps at least one of the
    D entries and records how many (``kept``)."""

    reads_training = False

    def _check_config(self) -> None:
        super()._check_config()
        if not 0 <= float(self.config["percentile"]) < 100:
            raise InputError(f"{self.method}: percentile must be in [0, 100), got {self.config['percentile']}")

    def fit_head(self) -> None:
        d = int(self.head_parameters()[0].shape[1])
        k = kept_units(d, float(self.config["percentile"]))
        if k < 1:
            raise InputError(f"{self.method}: percentile {self.config['percentile']} keeps no entry of the "
                             f"{d}-dimensional penultimate vector; lower it")
        self.fitted["kept"] = k
