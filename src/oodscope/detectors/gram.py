"""Gram matrices of feature maps (Sastry & Oore, "Detecting out-of-distribution examples with
Gram matrices", ICML 2020; first submitted to ICLR 2020 as "Zero-shot out-of-distribution
detection with feature correlations").

A classifier f of the in-distribution classes (:class:`~oodscope.upstream.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) is read post hoc: no outliers, no
retraining. For a selected layer l with feature map F_l (C channels x HW positions; a vector
tap such as the penultimate is a C x 1 map) and each power p = 1..P (``powers``, 10 in the
paper), the higher-order Gram matrix is

    G_l^p = (F_l^p (F_l^p)^T)^(1/p)        (F^p elementwise; the root keeps the sign),

reduced, as in the authors' code, to C values g_l^p (one per channel) by summing its rows:
g_l^p = sign(s) |s|^(1/p) with s = F_l^p (F_l^p)^T 1. The sum is taken before the root, as the
authors' code does it (taking the root of each entry first would make every power of a vector
tap give the same values); computed in float64.

Per class c predicted by f (argmax of the logits) the range [mn, mx] of every g value is
recorded over the training images f assigns to c. The deviation of a value v is

    delta(mn, mx, v) = 0 if mn <= v <= mx,  (mn - v) / |mn| if v < mn,  (v - mx) / |mx| if v > mx

(|mn|, |mx| floored at 1e-6), the layer deviation of x is the sum over p and channels,

    Delta_l(x) = sum_p sum_k delta(mn_{c,l,p,k}, mx_{c,l,p,k}, g_{l,p,k}(x)),   c = argmax f(x),

and the score, higher = more out-of-distribution, is

    s(x) = sum_l Delta_l(x) / E_val[Delta_l],

E_val the mean layer deviation of held-out in-distribution images.

Our choices where the paper leaves room:

* ``layers``: taps of the classifier (empty = every spatial tap and the penultimate vector: for
  the LeNet z1, z2, z3); the paper reads every convolution and activation output of a ResNet
  or DenseNet, a much larger set;
* ``fit_samples`` training images (default 5000, drawn with ``seed``; all when fewer) give the
  ranges, to keep fitting fast; a class never predicted on them takes the ranges of all of them;
* the held-out images of E_val are the validation images (up to ``val_samples`` of them) when
  ``fit`` is given some; otherwise a held-out part of the training images not used for the
  ranges (a fifth of them, at most ``val_samples``), where the paper uses a validation split;
* no tuning on OOD data (the paper needs none either).

``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import FitData
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register
from oodscope.training.core import batches, merge_presets
from oodscope.errors import InputError, ModelFileError

GRAM_DEFAULTS: dict[str, Any] = {
    **CLASSIFIER_DEFAULTS,
    "layers": [],
    "powers": 10,
    "fit_samples": 5000,
    "val_samples": 1000,
}
GRAM_PRESETS = merge_presets(CLASSIFIER_PRESETS, {"smoke": {"fit_samples": 500, "val_samples": 200}})
PREFIX = "gram"  # of the saved tensors
EPS = 1e-6  # floor of |mn|, |mx| and of E_val
HELD_OUT_FRACTION = 0.2  # of the training images, when no validation images are given


def gram_rowsums(features: torch.Tensor, powers: int) -> torch.Tensor:
    """g_l^p for p = 1..``powers``: (N, C, ...) features -> (N, P, C) float64, the row sums of
    F^p (F^p)^T followed by the sign-preserving p-th root."""
    f = features.double().reshape(features.shape[0], features.shape[1], -1)
    out = []
    for p in range(1, powers + 1):
        fp = f**p
        s = torch.einsum("ncs,ns->nc", fp, fp.sum(dim=1))  # = (F^p (F^p)^T) 1, without the C x C matrix
        out.append(s.sign() * s.abs() ** (1.0 / p))
    return torch.stack(out, dim=1)


def deviation(values: np.ndarray, mins: np.ndarray, maxs: np.ndarray, eps: float = EPS) -> np.ndarray:
    """delta(mn, mx, v) elementwise: 0 inside [mn, mx], the shortfall relative to |mn| below it,
    the excess relative to |mx| above it."""
    below = np.maximum(mins - values, 0.0) / np.maximum(np.abs(mins), eps)
    above = np.maximum(values - maxs, 0.0) / np.maximum(np.abs(maxs), eps)
    return below + above


def layer_deviations(values: np.ndarray, predicted: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    """Delta_l per image: ``values`` (N, P, C), ``predicted`` (N,) classes, ``mins``/``maxs`` (K, P, C)."""
    return deviation(values, mins[predicted], maxs[predicted]).sum(axis=(1, 2))


def default_layers(shapes: dict[str, tuple[int, ...]], penultimate: str) -> list[str]:
    """Every spatial tap (in the network's order) and the penultimate vector."""
    return [k for k, s in shapes.items() if len(s) == 3] + [penultimate]


@register
class GramDetector(LogitScoreDetector):
    method = "gram"
    paper = 'Sastry & Oore, "Detecting out-of-distribution examples with Gram matrices", ICML 2020'
    help = {
        "layers": "taps of the classifier read; [] = every spatial tap and the penultimate vector",
        "powers": "P: Gram matrices of powers 1..P (the paper: 10)",
        "fit_samples": "training images giving the per-class ranges, drawn with seed (all when fewer)",
        "val_samples": "at most this many held-out images give each layer's mean deviation E_val",
    }
    defaults = GRAM_DEFAULTS
    presets = GRAM_PRESETS
    order = 56

    def _check_config(self) -> None:
        super()._check_config()
        for key in ("powers", "fit_samples", "val_samples"):
            if self.config[key] < 1:
                raise InputError(f"gram: {key} must be at least 1, got {self.config[key]}")
        layers = self.config["layers"]
        if not all(isinstance(k, str) for k in layers) or len(set(layers)) != len(layers):
            raise InputError(f"gram: layers must be distinct tap names, got {layers!r}")

    # -- fitting ---------------------------------------------------------------------------
    def _select_layers(self) -> list[str]:
        """The layers read, checked against the classifier's taps."""
        shapes = {k: s for k, s in self.upstream.tap_shapes.items() if k != "logits"}
        layers = list(self.config["layers"]) or default_layers(shapes, self.upstream.penultimate)
        unknown = [k for k in layers if k not in shapes]
        if unknown:
            raise InputError(f"gram: unknown layers {unknown}; the {self.config['arch']} classifier's taps are "
                             f"{', '.join(shapes)}")
        return layers

    def _split(self, data: FitData) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Images giving the ranges, held-out images giving E_val, and where the latter come from."""
        g = torch.Generator().manual_seed(int(self.config["seed"]))
        n, fit_n, val_n = data.x.shape[0], int(self.config["fit_samples"]), int(self.config["val_samples"])
        order = torch.randperm(n, generator=g)
        if data.validation is not None:
            val = data.validation
            pick = torch.randperm(val.shape[0], generator=g)[:val_n]
            return data.x[order[:fit_n]], val[pick], "validation"
        if n < 2:
            raise InputError("gram: needs at least 2 training images (ranges and a held-out part)")
        held = min(val_n, max(1, round(HELD_OUT_FRACTION * n)))
        return data.x[order[held:held + fit_n]], data.x[order[:held]], "training"

    @torch.no_grad()
    def _values(self, x: torch.Tensor) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """g values per layer (N, P, C) and the logits of images ``x``."""
        layers, powers = self.fitted[PREFIX]["layers"], int(self.config["powers"])
        values: dict[str, list[np.ndarray]] = {k: [] for k in layers}
        logits = []
        for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
            taps = self.upstream.taps(x[idx])
            for k in layers:
                values[k].append(gram_rowsums(taps[k], powers).cpu().numpy())
            logits.append(taps["logits"].cpu())
        return {k: np.concatenate(v) for k, v in values.items()}, torch.cat(logits)

    def _stream_sample(self) -> int:
        """Its fit and held-out images, drawn from a stream."""
        return int(self.config["fit_samples"]) + int(self.config["val_samples"])

    def _fit(self, data: FitData) -> None:
        layers = self._select_layers()
        self.fitted[PREFIX] = {"layers": layers}
        fit_x, val_x, source = self._split(data)
        classes = int(self.upstream.fitted["classes"])
        values, logits = self._values(fit_x)
        predicted = logits.argmax(dim=1).numpy()
        counts = np.bincount(predicted, minlength=classes)
        self.mins: dict[str, np.ndarray] = {}
        self.maxs: dict[str, np.ndarray] = {}
        for k in layers:
            v = values[k]
            per_class = [v[predicted == c] if counts[c] else v for c in range(classes)]
            self.mins[k] = np.stack([p.min(axis=0) for p in per_class])
            self.maxs[k] = np.stack([p.max(axis=0) for p in per_class])
        val_values, val_logits = self._values(val_x)
        dev = self._deviations(val_values, val_logits.argmax(dim=1).numpy())
        self.norms = np.maximum(dev.mean(axis=0), EPS)
        self.fitted[PREFIX].update({
            "channels": {k: int(values[k].shape[2]) for k in layers},
            "fit_images": int(fit_x.shape[0]),
            "held_out_images": int(val_x.shape[0]),
            "held_out_from": source,
            "predicted_per_class": counts.tolist(),
        })

    # -- scoring ---------------------------------------------------------------------------
    def _deviations(self, values: dict[str, np.ndarray], predicted: np.ndarray) -> np.ndarray:
        """Delta_l per image and layer, (N, L)."""
        return np.stack([layer_deviations(values[k], predicted, self.mins[k], self.maxs[k])
                         for k in self.fitted[PREFIX]["layers"]], axis=1)

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        values, logits = self._values(x)
        dev = self._deviations(values, logits.argmax(dim=1).numpy())
        return {"score": (dev / self.norms).sum(axis=1), "logits": logits.numpy()}

    # -- persistence -----------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {f"{PREFIX}.norms": torch.from_numpy(self.norms)}
        for k in self.fitted[PREFIX]["layers"]:
            out[f"{PREFIX}.{k}.mins"] = torch.from_numpy(self.mins[k])
            out[f"{PREFIX}.{k}.maxs"] = torch.from_numpy(self.maxs[k])
        return out

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        own = {k: v for k, v in weights.items() if k.startswith(PREFIX + ".")}
        super()._restore({k: v for k, v in weights.items() if k not in own}, path)
        facts = self.fitted.get(PREFIX) or {}
        layers, channels = facts.get("layers", []), facts.get("channels", {})
        expected = {f"{PREFIX}.norms": (len(layers),)}
        shape = (int(self.upstream.fitted["classes"]), int(self.config["powers"]))
        for k in layers:
            expected[f"{PREFIX}.{k}.mins"] = expected[f"{PREFIX}.{k}.maxs"] = (*shape, int(channels.get(k, -1)))
        if set(own) != set(expected):
            raise ModelFileError(f"{path}: gram tensors {sorted(own)} do not match the saved layers {layers}")
        for name, want in expected.items():
            if tuple(own[name].shape) != want or own[name].dtype != torch.float64:
                raise ModelFileError(f"{path}: tensor {name} has shape {tuple(own[name].shape)} "
                                     f"({own[name].dtype}), expected {want} (float64)")
        self.norms = own[f"{PREFIX}.norms"].numpy()
        self.mins = {k: own[f"{PREFIX}.{k}.mins"].numpy() for k in layers}
        self.maxs = {k: own[f"{PREFIX}.{k}.maxs"].numpy() for k in layers}
