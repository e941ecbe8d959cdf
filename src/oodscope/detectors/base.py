"""The detector contract every method follows, and what a detector declares it needs.

``fit(train, outliers=None, *, labels=None, validation=None, upstream=None) -> self``;
``score(x) -> np.ndarray`` with higher = more out-of-distribution; ``outputs(x)`` gives the
score and, for detectors reading a classifier, its ``logits``; ``save(path)`` and
:func:`oodscope.detectors.load`.

A detector class declares, beside its ``method`` name, settings ``defaults`` and ``presets``:

* ``requires`` (:class:`Requires`): whether it needs known outliers, class labels, a shared
  upstream network (GEOM's f, a classifier) and whether it reads images or flattened
  pixels / feature vectors; and an optional package it needs;
* ``presets``: ``cpu``, ``paper``, ``smoke`` and ``demo`` settings (overrides of ``defaults``);
* ``help``: a one-line description of each setting it adds (those of its bases and of the upstream
  network it reads are found there: :meth:`Detector.settings_help`; registration refuses a setting
  without one), and ``paper``: its source in one line;
* whether it exports to ONNX, read from the code without fitting (:meth:`Detector.onnx_export`).

Nothing outside a detector's own file names it: the benchmark, the command line and the
demo read these declarations. A saved detector is a model directory (see
:mod:`oodscope.model_files`): its config, what was learnt at fit time (image shape,
normalisation, the upstream's facts), the threshold, and the weights of its networks.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.data.stream import ImageStream
from oodscope.errors import InputError, ModelCapabilityError, ModelFileError
from oodscope.inputs import as_features, as_images, as_labels, check_like
from oodscope.model_files import load_modules, write_model
from oodscope.precision import precision_of
from oodscope.settings import check_settings, settings_key
from oodscope.upstream.adapter import PROGRAMS, AdapterSpec, ModelAdapter
from oodscope.upstream.base import Upstream, image_stats, normalize_with, training_settings

FORMAT = "oodscope-detector"
PRESET_NAMES = ("cpu", "paper", "smoke", "demo")
IMAGE_FACTS = ("channels", "size", "mean", "std")

# Descriptions of settings that mean the same in every detector that has them (Detector.help):
# found after a detector's own and its upstream network's (see Detector.settings_help).
COMMON_HELP: dict[str, str] = {
    "seed": "random seed: initial weights, batch order, drawn samples",
    "device": '"cpu", "cuda", "cuda:N" or "auto" (a GPU when there is one)',
    "progress": "show progress bars while training",
    "amp": "train under bfloat16 autocast (about twice as fast on a CPU)",
    "precision": 'scoring: "float32", or "bfloat16" autocast (faster, scores rounded; not exported to ONNX)',
}


@dataclass(frozen=True)
class Requires:
    """What a detector needs to be fitted, and what it reads.

    Attributes:
        outliers: Known outlier images (outlier exposure) are required at fit time.
        labels: Class labels of the in-distribution images are required (it trains a classifier).
        validation: Held-out labelled in-distribution images are required (``validation=``), e.g.
            to fit a temperature on images the classifier was not trained on.
        upstream: The class of a shared trained network it reads (GEOM's f, a classifier): trained
            by the detector itself unless one is passed to ``fit``.
        inputs: ``"images"`` (N, C, H, W) or ``"features"`` (flattened pixels or feature vectors).
        package: An importable package it needs beyond oodscope's own dependencies.
        extra: The pip extra of oodscope that installs ``package``.
        user_models: A model of the user's (:class:`~oodscope.upstream.adapter.ModelAdapter`) may
            stand in for ``upstream`` (as it may wherever the upstream class says so: a classifier).
    """

    outliers: bool = False
    labels: bool = False
    validation: bool = False
    upstream: type[Upstream] | None = None
    inputs: str = "images"
    package: str | None = None
    extra: str | None = None
    user_models: bool = False

    def describe(self) -> str:
        """What fitting needs, in words."""
        parts = ["in-distribution images" if self.inputs == "images" else "in-distribution images or feature vectors"]
        if self.labels:
            parts.append("their class labels")
        if self.validation:
            parts.append("held-out labelled validation images")
        if self.outliers:
            parts.append("known outliers")
        if self.upstream is not None:
            parts.append(f"reads a {self.upstream.kind} network (shared, or trained by the detector)")
        return ", ".join(parts)

    def needs(self) -> list[str]:
        """What fitting needs, in short items for a table (``oodscope methods``)."""
        yours = " or a model of yours" if self.takes_user_models() else ""
        out = ["images" if self.inputs == "images" else f"images, feature vectors{yours}"]
        out += [item for flag, item in ((self.labels, "labels"), (self.validation, "labelled validation images"),
                                        (self.outliers, "outliers")) if flag]
        if self.upstream is not None:
            out.append(f"{self.upstream.kind} network{yours}")
        if self.package:
            out.append(f"{self.package} ({self.extra} extra)" if self.extra else self.package)
        return out

    def takes_user_models(self) -> bool:
        """Whether a model of the user's (:class:`~oodscope.upstream.adapter.ModelAdapter`) may stand in
        for the upstream network (or, for a features detector, give the feature vectors)."""
        return self.user_models or bool(getattr(self.upstream, "takes_user_models", False)) or self.inputs == "features"


@dataclass
class FitData:
    """The checked inputs of ``fit``: images as float tensors in [0, 1] (or features as float
    arrays), labels as int64 tensors of class indices."""

    x: Any
    outliers: Any = None
    labels: torch.Tensor | None = None
    validation: Any = None
    validation_labels: torch.Tensor | None = None
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) of images given to a features detector


def _labels_of(data: Any) -> np.ndarray | None:
    labels = getattr(data, "labels", None)
    return None if labels is None else np.asarray(labels)


class Detector:
    """Base class. Subclasses set ``method``, ``requires``, ``defaults``, ``presets``, ``help``, ``paper``
    (and ``choices`` for string settings with fixed values) and implement ``_fit`` and ``_score``
    (or ``_outputs``); detectors with networks also ``_build`` (untrained modules from
    ``self.fitted``) and ``_modules``."""

    method: ClassVar[str] = ""
    requires: ClassVar[Requires] = Requires()
    defaults: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    order: ClassVar[int] = 100  # position in listings (demo columns, --help)
    streams: ClassVar[bool] = False  # fits in one pass over an ImageStream / DataLoader, with bounded memory
    family: ClassVar[str] = ""  # "classifier": a detector built on a multi-class classifier (the classifier suite runs them)
    saved_defaults: ClassVar[dict[str, Any]] = {}  # settings added later: their value in model files that lack them
    help: ClassVar[dict[str, str]] = COMMON_HELP  # one line per setting a class adds or changes (see settings_help)
    paper: ClassVar[str] = ""  # the method's source in one line: authors, title, venue, year

    def __init__(self, **config: Any) -> None:
        self.config: dict[str, Any] = check_settings(self.method, self.defaults, config, self.choices)
        self._check_config()
        self.fitted: dict[str, Any] | None = None  # JSON-able facts learnt at fit time
        self.threshold: float | None = None
        self.threshold_rule: dict[str, Any] | None = None  # how the threshold was chosen (oodscope.pipeline.thresholds)
        self.upstream: Upstream | None = None

    @classmethod
    def settings_help(cls) -> dict[str, str]:
        """A one-line description of every setting, in the order of ``defaults``: from the ``help`` of
        the class or of its bases (the nearest first), else from that of the upstream network it reads
        (whose settings it carries), else :data:`COMMON_HELP` (``seed``, ``device``, ...). A setting
        without one is left out (registration refuses that)."""
        sources = [vars(k).get("help", {}) for k in cls.__mro__ if k is not Detector]
        sources += [getattr(cls.requires.upstream, "help", {}), Detector.help]
        out = {}
        for key in cls.defaults:
            text = next((src[key] for src in sources if key in src), None)
            if text is not None:
                out[key] = text
        return out

    @classmethod
    def scores_as_one_graph(cls) -> bool:
        """Whether its score is one network graph (:meth:`_graph`) once fitted on oodscope's own networks."""
        return cls._graph is not Detector._graph

    @classmethod
    def onnx_export(cls) -> str:
        """Whether a fitted detector of this class exports to one ONNX graph (``oodscope export``), known
        without fitting: "yes", "no" or "depends: <on what>". Any export also needs a model that
        scores in float32 (the default ``precision``) and was fitted on images."""
        if not cls.scores_as_one_graph():
            return "no"
        if cls.requires.takes_user_models():
            kind = cls.requires.upstream.kind if cls.requires.upstream is not None else "network"
            return f"depends: yes on oodscope's own {kind}, not on a model of yours (export that model)"
        return "yes"

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this detector cannot run here (a missing package), or None."""
        pkg = cls.requires.package
        if pkg and importlib.util.find_spec(pkg) is None:
            how = f"pip install 'oodscope[{cls.requires.extra}]'" if cls.requires.extra else f"pip install {pkg}"
            return f"{cls.method} needs the package {pkg!r}, which is not installed: {how}"
        return None

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, train: Any, outliers: Any = None, *, labels: Any = None, validation: Any = None,
            validation_labels: Any = None, upstream: Upstream | Detector | None = None) -> Detector:
        """Fit on in-distribution ``train`` (an ImageSet, array or tensor).

        Args:
            outliers: Known outlier images (used by detectors that require them, ignored otherwise).
            labels: Class labels of ``train`` (taken from an ImageSet's labels when not given);
                used by detectors that require labels.
            validation: Held-out in-distribution images (and ``validation_labels``), for
                detectors and networks that use them.
            upstream: An already trained network of the kind this detector reads (or a fitted
                detector reading one): reused instead of training one.

        Raises:
            InputError: a missing requirement, inconsistent inputs or an upstream of other settings.
        """
        reason = self.unavailable()
        if reason:
            raise InputError(reason)
        data = self._fit_data(train, outliers, labels, validation, validation_labels)
        self.fitted = self._facts(data)
        with self.naming_refusals():
            if self.requires.upstream is not None:
                self.upstream = self._take_upstream(upstream, data)
                self.fitted["upstream"] = self.upstream.fitted
            if isinstance(data.x, ImageStream) and self._stream_sample() > 0:
                data = self._sampled(data, self._stream_sample())
            torch.manual_seed(int(self.config.get("seed", 0)))  # initial weights depend on the seed alone
            self._build()
            self._fit(data)
        return self

    def _stream_sample(self) -> int:
        """How many images (with their labels) fitting on a stream draws into memory, a uniform
        sample (:meth:`ImageStream.sample`); 0: ``_fit`` reads the stream itself, or needs no images."""
        return 0

    def _sampled(self, data: FitData, n: int) -> FitData:
        """``data`` with the stream replaced by a uniform sample of ``n`` of its images (and labels)."""
        images, labels = data.x.sample(n, int(self.config.get("seed", 0)), labelled=self.requires.labels)
        x = as_images(images, "training images")
        return replace(data, x=x, labels=None if labels is None else as_labels(labels, len(x), "training labels"))

    def _fit_data(self, train: Any, outliers: Any, labels: Any, validation: Any, validation_labels: Any) -> FitData:
        stream = isinstance(train, (ImageStream, torch.utils.data.DataLoader))
        if stream and not self.streams:
            raise InputError(f"{self.method}: fits on images in memory (an array or ImageSet), not on a stream of "
                             "batches (ImageStream, DataLoader)")
        convert = self._convert_fit
        if stream:  # the labels come with the batches; held-out images and outliers are in memory
            x, shape = train if isinstance(train, ImageStream) else ImageStream(train, "DataLoader"), None
        elif self.requires.inputs == "features":
            x, shape = as_features(train, "training images")
        else:
            x, shape = as_images(train, "training images"), None
        first = as_images(x.first(), "training images") if stream else x
        o = None  # outliers are converted only for a detector that uses them
        if self.requires.outliers:
            if outliers is None or (hasattr(outliers, "__len__") and len(outliers) == 0):
                raise InputError(f"{self.method}: needs outlier images (outlier exposure); pass outliers=")
            o = convert(outliers, "outlier images")
            if self.requires.inputs == "images":
                check_like(o, first.shape[1], tuple(first.shape[-2:]), "outlier images")
        data = FitData(x, o, image_shape=shape)
        if validation is not None and (not hasattr(validation, "__len__") or len(validation)):
            data.validation = convert(validation, "validation images")
        if self.requires.labels and not stream:
            given = labels if labels is not None else _labels_of(train)
            if given is None:
                raise InputError(f"{self.method}: needs the class labels of the training images; pass labels=")
            data.labels = as_labels(given, len(x), "training labels")
        if self.requires.labels:
            if data.validation is not None:
                vl = validation_labels if validation_labels is not None else _labels_of(validation)
                data.validation_labels = None if vl is None else torch.as_tensor(np.asarray(vl), dtype=torch.int64)
        if self.requires.validation and (data.validation is None or (_labels_of(validation) is None and validation_labels is None)):
            raise InputError(f"{self.method}: needs held-out labelled validation images; pass validation= "
                             "(an ImageSet with labels, or images and validation_labels=)")
        return data

    def _convert_fit(self, x: Any, what: str) -> Any:
        if self.requires.inputs == "features":
            return as_features(x, what)[0]
        return as_images(x, what)

    def _facts(self, data: FitData) -> dict[str, Any]:
        if isinstance(data.x, ImageStream):  # the first batch tells the shape; no statistics of a stream
            first = as_images(data.x.first(), "training images")
            c = int(first.shape[1])
            return {"channels": c, "size": [int(s) for s in first.shape[-2:]], "mean": [0.0] * c, "std": [1.0] * c}
        if self.requires.inputs == "features":
            shape = data.image_shape
            return {"dim": int(data.x.shape[1]), **({} if shape is None else {"channels": shape[0], "size": list(shape[1:])})}
        return image_stats(data.x)

    def _take_upstream(self, given: Upstream | Detector | None, data: FitData) -> Upstream:
        cls = self.requires.upstream
        want = cls.settings_from(self.config)
        if isinstance(given, Detector):
            given = given.upstream
        if given is None and isinstance(data.x, ImageStream):
            raise InputError(f"{self.method}: fitting on a stream reads a model of yours: fit(stream, "
                             "upstream=ModelAdapter(model, penultimate=...)); its own network trains on images in memory")
        if given is None:
            return cls(**want).fit(data.x, data.labels, data.validation, data.validation_labels)
        if isinstance(given, ModelAdapter):
            if not (cls.takes_user_models or self.requires.user_models):
                raise InputError(f"{self.method}: reads its own {cls.kind} network, not a model of yours")
            if given.fitted is not None and [given.fitted["channels"], given.fitted["size"]] != \
                    [self.fitted["channels"], self.fitted["size"]]:
                raise InputError(f"{self.method}: the model was adapted to images of another shape")
            adapted = given if given.fitted is not None else given.fit(data.x)
            return adapted.scoring_view(self.config)
        if not isinstance(given, cls) or given.fitted is None:
            raise InputError(f"{self.method}: upstream must be a trained {cls.kind} network")
        if settings_key(training_settings(given.settings)) != settings_key(training_settings(cls(**want).settings)):
            raise InputError(f"{self.method}: the given {cls.kind} network was trained with different settings")
        if [given.fitted["channels"], given.fitted["size"]] != [int(data.x.shape[1]), list(data.x.shape[-2:])]:
            raise InputError(f"{self.method}: the given {cls.kind} network was trained on images of another shape")
        return given.scoring_view(self.config)  # read in this detector's precision

    # -- scoring ---------------------------------------------------------------------------
    def outputs(self, x: Any) -> dict[str, np.ndarray]:
        """``{"score": ...}`` (float64, higher = more OOD) plus what else the detector computes on
        the way, e.g. ``"logits"`` of the classifier it reads."""
        if self.fitted is None:
            raise InputError(f"{self.method}: detector is not fitted; call fit() or load() first")
        with self.naming_refusals():
            out = self._outputs(self._score_input(x))
        out["score"] = np.asarray(out["score"], dtype=np.float64)
        return out

    @contextlib.contextmanager
    def naming_refusals(self) -> Iterator[None]:
        """What a model of yours cannot give this detector (gradients, dropout), refused with its name."""
        try:
            yield
        except ModelCapabilityError as e:
            raise InputError(f"{self.method}: {e}") from None

    def score(self, x: Any) -> np.ndarray:
        """One score per input, higher = more out-of-distribution."""
        return self.outputs(x)["score"]

    def _score_input(self, x: Any) -> Any:
        if self.requires.inputs == "features":
            f, _ = as_features(x, "inputs to score")
            if f.shape[1] != self.fitted["dim"]:
                raise InputError(f"inputs to score: detector was fitted on {self.fitted['dim']} features "
                                 f"(pixels), got {f.shape[1]}")
            return f
        return self._checked_images(x, self.fitted)

    def _checked_images(self, x: Any, like: dict[str, Any]) -> torch.Tensor:
        """``x`` as images to score, checked against the ``channels`` and ``size`` of ``like`` unless
        the model of yours this detector reads converts them (its adapter then brings them)."""
        t = as_images(x, "images to score")
        if not (isinstance(self.upstream, ModelAdapter) and self.upstream.converts):
            check_like(t, like["channels"], tuple(like["size"]), "images to score")
        return t

    def summary(self) -> dict[str, Any]:
        """Numbers learnt at fit time worth a results row (e.g. a fitted temperature); none by default."""
        return {}

    def predict(self, x: Any) -> np.ndarray:
        """True where the input is rejected as out-of-distribution (score above the saved threshold)."""
        if self.threshold is None:
            raise InputError(f"{self.method}: no threshold set; call set_threshold() first")
        return self.score(x) > self.threshold

    def set_threshold(self, value: float, rule: dict[str, Any] | None = None) -> None:
        """Inputs scoring above ``value`` are rejected by :meth:`predict`. ``rule``: how it was chosen
        (JSON-able; saved with the model)."""
        self.threshold = float(value)
        self.threshold_rule = rule

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel normalisation with the statistics of the training images."""
        return normalize_with(self.fitted, x)

    def export_graph(self) -> torch.nn.Module:
        """The whole score as one torch module (float images in [0, 1] at the fitted size ->
        scores), in float32 and on the CPU: what ONNX export traces (:mod:`oodscope.export`).

        Raises:
            InputError: the detector is not fitted, or its score is not one network graph (it
                names the detector).
        """
        if self.fitted is None:
            raise InputError(f"{self.method}: cannot export a detector that has not been fitted")
        graph = self._graph()
        if graph is None:
            raise InputError(f"{self.method}: cannot be exported to ONNX (oodscope has no single-graph form of its score); "
                             "serve the saved model instead")
        return copy.deepcopy(graph).float().cpu().eval()  # a copy: the detector's own networks stay as they are

    # -- subclass hooks --------------------------------------------------------------------
    def _graph(self) -> torch.nn.Module | None:
        """The score as one traceable module (:meth:`export_graph`); None: not exportable."""
        return None

    def _check_config(self) -> None:
        """Check settings beyond their types and choices (InputError)."""

    def _build(self) -> None:
        """Create the (untrained) modules from ``self.fitted``."""

    def _fit(self, data: FitData) -> None:
        raise NotImplementedError

    def _outputs(self, x: Any) -> dict[str, np.ndarray]:
        return {"score": self._score(x)}

    def _score(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        """The detector's own networks by weight-name prefix (the upstream's are added)."""
        return {}

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save besides the networks' weights (names ``<prefix>.<name>``)."""
        return {}

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        """Load the saved tensors into the modules built from the saved facts."""
        load_modules(self.all_modules(), weights, path)

    def all_modules(self) -> dict[str, torch.nn.Module]:
        """The upstream's networks and the detector's own, by weight-name prefix."""
        up = self.upstream.modules() if self.upstream is not None else {}
        return {**up, **self._modules()}

    # -- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor a saved detector holds."""
        out = {f"{p}.{k}": v for p, m in self.all_modules().items() for k, v in m.state_dict().items()}
        out.update(self._tensors())
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted detector as a model directory at ``path`` (atomically)."""
        if self.fitted is None:
            raise InputError(f"{self.method}: cannot save a detector that has not been fitted")
        meta = {"method": self.method, "config": self.config, "fitted": self.fitted, "threshold": self.threshold,
                "threshold_rule": self.threshold_rule}
        return write_model(path, FORMAT, meta, self.state_dict(), self.upstream.files() if self.upstream else None)

    @classmethod
    def saved_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The settings of a model file or results row written by an earlier version: settings added
        since at the value they had before (``saved_defaults``); a ``precision`` missing from a model
        that scores through networks is the one it scored in (bfloat16 when its ``amp`` was on)."""
        out = {**cls.saved_defaults, **config}
        if "precision" in cls.defaults and "precision" not in out:
            out["precision"] = precision_of(out)
        return out

    @property
    def precision(self) -> str:
        """The precision this detector's scores are computed in (its ``precision`` setting;
        "float32" for a detector without networks under autocast)."""
        return str(self.config.get("precision", "float32"))

    @classmethod
    def from_saved(cls, meta: dict[str, Any], weights: dict[str, torch.Tensor], path: str,
                   model: torch.nn.Module | None = None) -> Detector:
        """A detector from a verified model directory's config and tensors; ``model``: the user's own
        model a detector fitted on one reads again (checked against the saved fingerprint)."""
        det = cls(**cls.saved_config(meta["config"]))
        det.fitted = meta["fitted"]
        det.threshold = meta.get("threshold")
        det.threshold_rule = meta.get("threshold_rule")
        adapted = "adapter" in (det.fitted.get("upstream") or {})  # a model of yours (any detector taking one)
        if adapted:
            with det.naming_refusals():
                det.upstream = adapted_model(model, det.fitted["upstream"], path).scoring_view(det.config)
        elif cls.requires.upstream is not None:
            facts = det.fitted.get("upstream") or {k: det.fitted[k] for k in IMAGE_FACTS}  # older files: same facts
            if model is not None:
                raise InputError(f"{det.method} at {path} reads its own {cls.requires.upstream.kind} network; "
                                 "it takes no model")
            det.upstream = cls.requires.upstream(**cls.requires.upstream.settings_from(det.config)).restore(facts)
        det._build()
        det._restore(weights, path)
        return det


def adapted_model(model: torch.nn.Module | str | os.PathLike[str] | None, facts: dict[str, Any],
                  path: str) -> ModelAdapter:
    """The user's ``model`` (a module, or a ``.pt2`` / ``.onnx`` file) in the adapter a detector was
    fitted with (its saved spec and facts); with no model given, the model file saved with the
    detector (``model.pt2`` or ``model.onnx``), if any.

    Raises:
        ModelFileError: no model given nor saved, or not the model the detector was fitted on
            (another fingerprint of its weights, or of its file, and spec).
    """
    spec = AdapterSpec.from_json(facts["adapter"])
    kw = {"penultimate": spec.penultimate, "head": spec.head, "taps": spec.taps, "preprocess": spec.preprocess,
          "channels_last": spec.channels_last}
    saved = next((Path(path) / name for name in PROGRAMS if (Path(path) / name).is_file()), None)
    if model is None and saved is None:
        raise ModelFileError(f"{path}: fitted on a model of yours (penultimate {spec.penultimate!r}, head "
                             f"{spec.head!r}); load it with the model: load(path, model=your_module or its .pt2 / .onnx file)")
    try:
        if model is None or isinstance(model, (str, os.PathLike)):
            adapter = ModelAdapter.from_file(saved if model is None else model, **kw)
        else:
            adapter = ModelAdapter(model, **kw)
    except InputError as e:
        raise ModelFileError(f"{path}: {e}") from None
    if adapter.fingerprint() != facts.get("fingerprint"):
        raise ModelFileError(f"{path}: the model given is not the one the detector was fitted on (fingerprint "
                             f"{adapter.fingerprint()[:16]}, saved {str(facts.get('fingerprint'))[:16]}): other "
                             "weights or another adapter spec")
    return adapter.restore(facts)
