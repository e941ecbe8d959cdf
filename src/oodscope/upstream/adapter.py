"""Your own model as the classifier the post-hoc detectors read: :class:`ModelAdapter`.

Any ``torch.nn.Module`` that maps a batch of images to class logits. You name, by module path (as
``model.get_submodule`` reads it), where the penultimate features come from (``"avgpool"``,
``"features.7"``), the final linear layer (``"fc"``, ``"classifier.1"``, whose weight and bias
several post-hoc methods read) and any intermediate layers to tap; their outputs are read with
forward hooks, so the model's class is not changed and needs no ``return_feature`` contract
(compare OpenOOD's ``forward(x, return_feature=True)`` / ``get_fc()``, and pytorch-ood's detectors
that take any ``nn.Module`` and the caller's own feature vectors).

What the model expects is declared with it (:class:`Preprocess`: input size and how to reach it,
channel mean / std, channel count and order). With nothing declared the model receives exactly what
it would in plain torch: float32 NCHW in [0, 1] at the images' own size and channels. Images of
another size or channel count are brought to the declared input (bilinear resize with antialiasing,
or a resize of the shorter side and a centre crop; grey to RGB by repetition, RGB to grey by the
ITU-R BT.601 luma weights) or refused with a message. Device and dtype follow the model.

The adapter trains nothing and saves none of the model's weights: a detector fitted on it keeps
the adapter's spec and a SHA-256 fingerprint of the model's weights and spec, and loading it takes
the model again and refuses a different one (:func:`oodscope.detectors.load`).

A model file is a ``torch.export`` program (``.pt2``) or an ONNX file (``.onnx``, scored with
onnxruntime: :class:`~oodscope.upstream.onnx_model.OnnxModel`); :meth:`ModelAdapter.from_file`
chooses by the suffix.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from oodscope.errors import InputError
from oodscope.inputs import as_images
from oodscope.training.core import in_format, scoring_autocast
from oodscope.upstream.base import Upstream

RESIZES = ("resize", "center-crop", "none")
PROGRAM = "model.pt2"  # the user's model program inside a saved detector
ONNX_PROGRAM = "model.onnx"  # or the user's ONNX file (oodscope.upstream.onnx_model)
PROGRAMS = (PROGRAM, ONNX_PROGRAM)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


@dataclass(frozen=True)
class Preprocess:
    """What the model expects of its input, applied to images in [0, 1] (N, C, H, W).

    Attributes:
        size: ``(height, width)`` the model takes; None: the images' own size.
        resize: How other sizes reach ``size``: ``"resize"`` (bilinear, antialiased), ``"center-crop"``
            (resize the shorter side to the larger of ``size``, then crop the centre) or ``"none"``
            (refuse them).
        mean, std: Per-channel normalisation ``(x - mean) / std`` after resizing (None: none).
        channels: Channels the model takes (1 or 3; None: the images' own). Grey images become RGB by
            repetition, RGB images grey by the BT.601 luma weights; other counts are refused.
        channel_order: ``"rgb"`` or ``"bgr"`` (a model trained on BGR images, as OpenCV reads them).
    """

    size: tuple[int, int] | None = None
    resize: str = "resize"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: int | None = None
    channel_order: str = "rgb"

    def __post_init__(self) -> None:
        if self.resize not in RESIZES:
            raise InputError(f"preprocess: resize must be one of {', '.join(RESIZES)}, got {self.resize!r}")
        if self.channel_order not in ("rgb", "bgr"):
            raise InputError(f"preprocess: channel_order must be rgb or bgr, got {self.channel_order!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise InputError(f"preprocess: size must be (height, width), got {self.size}")
        if self.channels not in (None, 1, 3):
            raise InputError(f"preprocess: channels must be 1 or 3, got {self.channels}")
        if (self.mean is None) != (self.std is None):
            raise InputError("preprocess: give both mean and std, or neither")
        if self.std is not None and (min(self.std) <= 0 or len(self.std) != len(self.mean or ())):
            raise InputError(f"preprocess: std must be positive, one per mean, got mean {self.mean}, std {self.std}")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in cls.__dataclass_fields__})

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input from images ``x`` in [0, 1] (N, C, H, W), in ``x``'s dtype.

        Raises:
            InputError: a channel count or size the declaration cannot bring to the model's.
        """
        c = int(x.shape[1])
        if self.channels is not None and c != self.channels:
            if c == 1 and self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif c == 3 and self.channels == 1:
                x = (x * torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
            else:
                raise InputError(f"images have {c} channels; the model takes {self.channels} "
                                 "(grey and RGB are converted, other counts are not)")
        if self.channel_order == "bgr":
            x = x.flip(1)
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = self._resize(x)
        if self.mean is not None:
            n = int(x.shape[1])
            if len(self.mean) != n:
                raise InputError(f"preprocess: {len(self.mean)} channel means for images of {n} channels")
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size  # type: ignore[misc]
        if self.resize == "none":
            raise InputError(f"images of {tuple(x.shape[-2:])} pixels; the model takes {tuple(self.size)} and "
                             "resize is 'none'")
        if self.resize == "resize":
            return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        side = max(h, w)
        ih, iw = x.shape[-2:]
        scale = side / min(ih, iw)
        x = F.interpolate(x, size=(max(h, round(ih * scale)), max(w, round(iw * scale))), mode="bilinear",
                          align_corners=False, antialias=True)
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        return x[..., top:top + h, left:left + w]


@dataclass(frozen=True)
class AdapterSpec:
    """Where the adapter reads the model: the penultimate features, the head and the taps (module
    paths), the input declaration, and the memory format the model runs in."""

    penultimate: str | None = None
    head: str | None = None
    taps: tuple[str, ...] = ()
    preprocess: Preprocess = field(default_factory=Preprocess)
    channels_last: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"penultimate": self.penultimate, "head": self.head, "taps": list(self.taps),
                "preprocess": self.preprocess.to_json(), "channels_last": self.channels_last}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdapterSpec:
        return cls(data.get("penultimate"), data.get("head"), tuple(data.get("taps") or ()),
                   Preprocess.from_json(data.get("preprocess") or {}), bool(data.get("channels_last", False)))


def model_fingerprint(model: torch.nn.Module, spec: AdapterSpec) -> str:
    """SHA-256 of the model's parameters and buffers (names, dtypes, shapes and bytes, in name order)
    and of the adapter's spec: what a saved detector checks the model given at load time against."""
    h = hashlib.sha256(json.dumps(spec.to_json(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_program(path: str | os.PathLike[str]) -> torch.nn.Module:
    """A model saved with ``torch.export.save`` (``.pt2``), unflattened so that its modules keep the
    names they had (``layer4``, ``avgpool``, ``fc``) for the adapter's hooks. An archive that would
    make torch unpickle anything is refused first (:func:`refuse_pickled`).

    Raises:
        InputError: not a ``.pt2`` file, or one torch cannot read as an exported program.
    """
    path = Path(path)
    if path.suffix != ".pt2":
        raise InputError(f"{path}: a model of yours is read from a torch.export program (.pt2) or an ONNX file "
                         "(.onnx); write one with torch.export.save(torch.export.export(model, (example,)), 'model.pt2')")
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    refuse_pickled(path)
    try:
        return torch.export.unflatten(torch.export.load(str(path)))
    except Exception as e:  # torch raises several types for a damaged or foreign archive
        raise InputError(f"{path}: not a readable torch.export program ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def refuse_pickled(path: Path) -> None:
    """Refuse a ``.pt2`` archive that would make ``torch.export.load`` unpickle anything: weights or
    constants stored with pickle, custom or opaque objects, or an archive without the weights'
    config (an older format). A program of plain tensors, as ``torch.export.save`` writes for an
    ordinary model, passes.

    Raises:
        InputError: such an archive, or not a zip archive at all.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            configs = [n for n in archive.namelist() if n.endswith(("_weights_config.json", "_constants_config.json"))]
            if not any(n.endswith("_weights_config.json") for n in configs):
                raise InputError(f"{path}: a .pt2 archive without its weights' config (an older format, read with "
                                 "pickle): save the program again with today's torch.export.save")
            for name in configs:
                for fqn, entry in json.loads(archive.read(name)).get("config", {}).items():
                    if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(("weight_", "tensor_")):
                        raise InputError(f"{path}: {fqn} is stored with pickle (or is a custom object), which oodscope "
                                         "never unpickles; export a model whose weights and constants are tensors")
            for name in (n for n in archive.namelist() if "/data/sample_inputs/" in n):
                try:  # torch.export.load falls back to a full unpickling when this fails: refuse it first
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception:
                    raise InputError(f"{path}: its sample inputs are not plain tensors, which oodscope never "
                                     "unpickles; export with tensors as the example inputs") from None
    except (zipfile.BadZipFile, OSError, ValueError, AttributeError) as e:
        raise InputError(f"{path}: not a torch.export program ({e})") from None


MODEL_READERS: dict[str, Callable[..., ModelAdapter]] = {}  # file suffix -> its adapter (each registers itself)


class ModelAdapter(Upstream):
    """A user's trained classifier, read by the post-hoc detectors as they read oodscope's own
    (:class:`~oodscope.upstream.classifier.Classifier`): its logits, its taps (the named modules'
    outputs, the penultimate features flattened to vectors) and its head's weight and bias.

    Args:
        model: Any module mapping images to logits (N, K); put it on its device first.
        penultimate: Module whose output is the feature vector the head reads (None: no features).
        head: The final linear layer (an ``nn.Linear``; None: none).
        taps: Further modules whose outputs detectors reading layers use (feature maps are kept as
            they are; the detectors pool them as they need).
        preprocess: What the model expects (:class:`Preprocess`); default: the images as they are.
        channels_last: Run convolutions in the ``channels_last`` memory format (as oodscope's own
            networks do on the CPU); default: as plain torch does.
        batch_size: Images per forward pass when scoring.
        precision: ``float32`` or ``bfloat16`` autocast (the detector's own setting wins).
    """

    kind = "model"
    prefix = "model"
    defaults = {"batch_size": 512, "precision": "float32", "device": "cpu"}
    choices = {"precision": ("float32", "bfloat16")}
    needs_labels = False

    def __init__(self, model: torch.nn.Module, penultimate: str | None = None, head: str | None = None,
                 taps: Sequence[str] = (), preprocess: Preprocess | None = None, channels_last: bool = False,
                 batch_size: int = 512, precision: str = "float32") -> None:
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
        first = next(iter(model.parameters()), None)
        device = str(first.device) if first is not None else "cpu"
        super().__init__(batch_size=batch_size, precision=precision, device=device)
        self.model = model
        self.spec = AdapterSpec(penultimate, head, tuple(taps), preprocess or Preprocess(), channels_last)
        self.dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        self.device = torch.device(device)
        self.named = {path: self._module(path) for path in [*self.spec.taps, *filter(None, [penultimate])]}
        weight = None if head is None else getattr(self._module(head), "weight", None)
        if head is not None and not (isinstance(weight, torch.Tensor) and weight.dim() == 2):
            raise InputError(f"head {head!r} is a {type(self._module(head)).__name__}, not a linear layer (a 2-D weight)")
        if penultimate is not None and penultimate in self.spec.taps:
            raise InputError(f"{penultimate!r} is the penultimate layer; do not list it among the taps too")
        self.net = model
        self.source: Path | None = None  # the program file the model was read from (saved with a detector)
        self._tap_shapes: dict[str, tuple[int, ...]] | None = None
        self._fingerprint: str | None = None

    # -- the model --------------------------------------------------------------------------
    def _module(self, path: str) -> torch.nn.Module:
        try:
            return self.model.get_submodule(path)
        except AttributeError:
            names = [n for n, _ in self.model.named_modules() if n]
            shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
            raise InputError(f"the model has no module {path!r}; its modules: {shown}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **spec: Any) -> ModelAdapter:
        """The adapter of a model saved as a ``torch.export`` program (``.pt2``, :func:`load_program`)
        or in a format another reader registered in :data:`MODEL_READERS` (``.onnx``:
        :class:`~oodscope.upstream.onnx_model.OnnxModel`)."""
        reader = MODEL_READERS.get(Path(path).suffix.lower())
        if reader is not None:
            return reader(path, **spec)
        adapter = cls(load_program(path), **spec)
        adapter.source = Path(path)
        return adapter

    @property
    def head(self) -> torch.nn.Module | None:
        """The final linear layer (its ``weight`` and ``bias``), if named."""
        return None if self.spec.head is None else self._module(self.spec.head)  # type: ignore[return-value]

    @property
    def penultimate(self) -> str:
        """Name of the tap holding the vector the head reads."""
        if self.spec.penultimate is None:
            raise InputError("this detector reads the penultimate features: name them (penultimate=, e.g. 'avgpool')")
        return self.spec.penultimate

    @property
    def converts(self) -> bool:
        """Whether images of another size and channel count are brought to the model's input (the
        declaration gives both); otherwise the detector wants the images it was fitted on."""
        return self.spec.preprocess.size is not None and self.spec.preprocess.channels is not None

    def fingerprint(self) -> str:
        """:func:`model_fingerprint` of the model and spec (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model, self.spec)
        return self._fingerprint

    # -- Upstream ---------------------------------------------------------------------------
    def fit(self, x: torch.Tensor, labels: torch.Tensor | None = None, validation: torch.Tensor | None = None,
            validation_labels: torch.Tensor | None = None, **extra: Any) -> ModelAdapter:
        """Nothing is trained: the facts of the images the detector fits on (channels, size) and of
        the model (number of classes, from its logits on two of them)."""
        if not isinstance(x, torch.Tensor):  # a stream (oodscope.data.ImageStream): its first batch
            x = as_images(x.first(), "training images")
        with torch.no_grad():
            k = int(self.logits(x[:2]).shape[1])
        self.fitted = {"channels": int(x.shape[1]), "size": [int(s) for s in x.shape[-2:]], "classes": k,
                       "mean": [0.0] * int(x.shape[1]), "std": [1.0] * int(x.shape[1]),
                       "adapter": self.spec.to_json(), "fingerprint": self.fingerprint()}
        return self

    def restore(self, fitted: dict[str, Any]) -> ModelAdapter:
        self.fitted = fitted
        return self

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}  # the user's weights are theirs: a saved detector keeps their fingerprint, not them

    def files(self) -> dict[str, Path]:
        """Files a saved detector carries: the model's program when it was read from one (the
        command line, the service and export then need no model given)."""
        return {} if self.source is None else {PROGRAM: self.source}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input from images in [0, 1]: the declared preprocessing."""
        return self.spec.preprocess(x)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        xb = self.normalize(x.to(self.device, self.dtype))
        return in_format(xb, torch.channels_last if self.spec.channels_last else torch.contiguous_format)

    def _forward(self, xb: torch.Tensor) -> torch.Tensor:
        try:
            out = self.model(xb)
        except RuntimeError as e:
            raise InputError(f"the model cannot take images of shape {tuple(xb.shape[1:])} ({str(e).splitlines()[0]}); "
                             "declare its input (preprocess=Preprocess(size=..., channels=...))") from None
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise InputError(f"the model must return logits (N, K), got {type(out).__name__} "
                             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
        return out

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (float32, on the CPU) of images ``x`` in [0, 1], in the adapter's precision."""
        self.model.eval()
        out = []
        step = int(self.settings["batch_size"])
        for i in range(0, x.shape[0], step):  # slices: views, no copy before _input's
            with scoring_autocast(self.device, self.settings["precision"]):
                out.append(self._forward(self._input(x[i:i + step])).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, int((self.fitted or {}).get("classes", 0)))

    def taps(self, x: torch.Tensor, dropout: bool = False, precision: str | None = None) -> dict[str, torch.Tensor]:
        """The named modules' outputs (float32, the penultimate one flattened to (N, D)) and the
        ``logits`` on one batch of images ``x`` in [0, 1], on the model's device, with gradients when
        enabled. ``dropout``: dropout layers stay stochastic (MC dropout)."""
        self.model.eval()
        if dropout:
            for m in self.model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
        seen: dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(self._keep(path, seen)) for path, module in self.named.items()]
        try:
            with scoring_autocast(self.device, precision or self.settings["precision"]):
                logits = self._forward(self._input(x))
        finally:
            for h in hooks:
                h.remove()
            self.model.eval()
        out = {path: seen[path].float() for path in self.spec.taps}
        if self.spec.penultimate is not None:
            out[self.spec.penultimate] = seen[self.spec.penultimate].float().flatten(1)
        out["logits"] = logits.float()
        return out

    @staticmethod
    def _keep(path: str, seen: dict[str, torch.Tensor]) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                raise InputError(f"module {path!r} returns {type(output).__name__}, not a tensor: tap another module")
            seen[path] = output

        return hook

    @property
    def tap_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each tap for one image (without the batch axis), ``logits`` included; probed once
        on blank images of the fitted size."""
        if self._tap_shapes is None:
            if self.fitted is None:
                raise InputError("the adapter has not seen any image yet (fit a detector on it first)")
            probe = torch.zeros(2, self.fitted["channels"], *self.fitted["size"])
            with torch.no_grad():
                self._tap_shapes = {k: tuple(v.shape[1:]) for k, v in self.taps(probe).items()}
        return self._tap_shapes

    def differentiable(self, amp: bool | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> logits`` for images in [0, 1], differentiable in ``x`` (float32 unless ``amp``)."""
        use = self.settings["precision"] == "bfloat16" if amp is None else amp

        def model(x: torch.Tensor) -> torch.Tensor:
            self.model.eval()
            with scoring_autocast(self.device, "bfloat16" if use else "float32"):
                return self._forward(self._input(x)).float()

        return model

    def summary(self) -> dict[str, Any]:
        return {"classes": self.fitted["classes"]} if self.fitted else {}

    def _build(self) -> None:
        """Nothing to build: the model is the caller's."""

    def _fit(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to train."""
