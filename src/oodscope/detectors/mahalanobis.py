"""Mahalanobis distance to class-conditional Gaussians on several layers (Lee, Lee, Lee & Shin,
"A simple unified framework for detecting out-of-distribution samples and adversarial attacks",
NeurIPS 2018), in the form that needs no OOD data.

A classifier f of the in-distribution classes (:class:`~oodscope.upstream.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) is read post hoc. For each layer l of
``layers`` (default: every tap of the classifier before the logits), its features are pooled to a
vector f_l(x) (the mean over space of each channel of a feature map, as the paper does; a vector
tap as it is). On the training images of each class c:

    mu_{l,c} = mean of f_l(x) over class c,
    Sigma_l = (1/N) sum_c sum_{x in c} (f_l(x) - mu_{l,c}) (f_l(x) - mu_{l,c})^T  (tied covariance),
    M_l(x) = min_c (f_l(x) - mu_{l,c})^T Sigma_l^+ (f_l(x) - mu_{l,c})   (^+: pseudo-inverse).

The minimum is over the classes present in the fit sample; fitting refuses a sample in which a
class of the classifier has no image (with ``fit_samples`` too small to hold every class, say).

On a model of yours, fitting also takes a stream of (images, labels) batches (an ``ImageStream``,
a class folder, a ``DataLoader``): with ``fit_samples`` = 0 the means and the tied covariance are
running statistics of every image (K means and one D x D scatter per layer in memory, whatever the
number of images), otherwise a uniform sample of ``fit_samples`` images is drawn from the stream.

Input pre-processing: with ``eps`` > 0, each layer's distance is taken at
x~_l = x - eps * sign(grad_x M_l(x)) (the step that brings x closer to its nearest class) on the
pixels in [0, 1]: eps is in pixel units, as in the authors' code (``lib_generation.py`` divides
the sign gradient by the channel's standard deviation in normalised space, a pixel step of eps)
and as ``odin``; the gradient is computed in float32 whatever the scoring ``precision``; a zero
gradient component gives no step there (``torch.sign``; the authors' code steps +eps). The
paper tunes eps on OOD validation data; without any, the default is 0 (no pre-processing).

Combining the layers: the paper fits a logistic regression on the layer scores, which needs OOD data
(its weakness, as Hirono Okamoto's Deep Learning JP seminar slides "[DL輪読会]ICLR2020の分布外検知速報"
(out-of-distribution detection papers at ICLR 2020, 2019) point out) — that is
``mahalanobis-tuned``. Here, with no OOD data: ``combine="sum"`` (default) standardises each M_l by
its mean and standard deviation (population form, ddof 0) on held-out in-distribution images (the
validation images given to ``fit``, else the training images) and sums them; ``combine="last"`` is
the penultimate layer alone (the paper's single-layer method), standardised the same way (which
changes no ranking). The score is higher = more out-of-distribution.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.data.stream import ImageStream
from oodscope.detectors.base import FitData
from oodscope.inputs import as_images
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.model_files import load_modules
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register
from oodscope.training.core import batches
from oodscope.errors import InputError, ModelFileError

MAHALANOBIS_DEFAULTS: dict[str, Any] = {
    **CLASSIFIER_DEFAULTS,
    "layers": [],
    "eps": 0.0,
    "combine": "sum",
    "fit_samples": 0,
}
MAHALANOBIS_HELP: dict[str, str] = {
    "layers": "taps of the classifier read; [] = every tap before the logits",
    "eps": "input pre-processing step, in pixels in [0, 1] (0: none; the paper tunes it on OOD data)",
    "combine": '"sum" of the standardised layer distances, or "last" (the penultimate layer alone)',
    "fit_samples": "training images for the class means and covariance, drawn with seed (0: all)",
}
PREFIX = "maha"


def pooled(t: torch.Tensor) -> torch.Tensor:
    """A feature map (N, C, H, W) averaged over space to (N, C); a vector tap unchanged."""
    return t.mean(dim=(2, 3)) if t.dim() == 4 else t.flatten(1)


def class_gaussians(features: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class means (K, d) and the pseudo-inverse of the tied covariance (d, d), in float64.

    Raises:
        InputError: a class of the ``classes`` with no image among ``features`` (its mean would
            be made up, and compete in the minimum).
    """
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    missing = [c for c in range(classes) if not np.any(labels == c)]
    if missing:
        raise InputError(f"mahalanobis: class{'es' if len(missing) > 1 else ''} {missing} of the classifier's {classes} "
                         f"ha{'ve' if len(missing) > 1 else 's'} no image among the {len(f)} fit images; raise "
                         "fit_samples (0 = all training images) or give every class training images")
    means = np.stack([f[labels == c].mean(axis=0) for c in range(classes)])
    centred = f - means[labels]
    cov = centred.T @ centred / len(f)
    return means, np.linalg.pinv(cov, hermitian=True)


class ClassMoments:
    """Running class counts, class means and the pooled within-class scatter of feature vectors."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.n = np.zeros(classes)
        self.mean: np.ndarray | None = None
        self.scatter: np.ndarray | None = None

    def add(self, features: np.ndarray, labels: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64)
        if self.mean is None:
            self.mean, self.scatter = np.zeros((self.classes, f.shape[1])), np.zeros((f.shape[1], f.shape[1]))
        nb = np.bincount(labels, minlength=self.classes).astype(np.float64)[: self.classes]
        mb = np.zeros_like(self.mean)
        np.add.at(mb, labels, f)
        mb /= np.maximum(nb, 1)[:, None]
        centred = f - mb[labels]
        total = self.n + nb
        delta = mb - self.mean
        w = np.divide(self.n * nb, total, out=np.zeros_like(total), where=total > 0)
        self.scatter += centred.T @ centred + delta.T @ (w[:, None] * delta)
        self.mean += delta * np.divide(nb, total, out=np.zeros_like(total), where=total > 0)[:, None]
        self.n = total

    def gaussians(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Class means and the pseudo-inverse of the tied covariance, as :func:`class_gaussians`."""
        missing = [c for c in range(self.classes) if self.n[c] == 0]
        if missing or self.mean is None:
            raise InputError(f"{method}: classes {missing} of the classifier's {self.classes} have no image in the stream")
        return self.mean.copy(), np.linalg.pinv(self.scatter / self.n.sum(), hermitian=True)


def min_distance(f: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """min_c (f - mu_c)^T P (f - mu_c) for each row of ``f`` (float64, differentiable)."""
    diff = f.double().unsqueeze(1) - means.unsqueeze(0)  # (N, K, d)
    return torch.einsum("nkd,de,nke->nk", diff, precision, diff).min(dim=1).values


@register
class MahalanobisDetector(LogitScoreDetector):
    method = "mahalanobis"
    paper = ('Lee, Lee, Lee & Shin, "A simple unified framework for detecting out-of-distribution samples and '
             'adversarial attacks", NeurIPS 2018')
    help = MAHALANOBIS_HELP
    defaults = MAHALANOBIS_DEFAULTS
    choices = {**LogitScoreDetector.choices, "combine": ("sum", "last")}
    order = 54
    stats: ClassVar[tuple[str, ...]] = ("loc", "scale")  # tensors of the combination, one value per layer

    def _check_config(self) -> None:
        super()._check_config()
        if self.config["eps"] < 0:
            raise InputError(f"{self.method}: eps must be >= 0, got {self.config['eps']}")
        if self.config["fit_samples"] < 0:
            raise InputError(f"{self.method}: fit_samples must be >= 0, got {self.config['fit_samples']}")

    # -- the layers ------------------------------------------------------------------------
    def _layers(self) -> list[str]:
        taps = [k for k in self.upstream.tap_shapes if k != "logits"]
        chosen = list(self.config["layers"]) or taps
        bad = [k for k in chosen if k not in taps]
        if bad:
            raise InputError(f"{self.method}: unknown layers {bad}; the classifier's taps are {taps}")
        if self.config["combine"] == "last":
            chosen = [self.upstream.penultimate]
        return chosen

    def features(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """Pooled features f_l of every layer, in batches."""
        out: dict[str, list[torch.Tensor]] = {k: [] for k in self.fitted["layers"]}
        with torch.no_grad():
            for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
                taps = self.upstream.taps(x[idx])
                for k in out:
                    out[k].append(pooled(taps[k]).double().cpu())
        return {k: torch.cat(v).numpy() for k, v in out.items()}

    def layer_distance(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """M_l of one batch, at the pre-processed input when eps > 0."""
        means, precision = self.gaussians[layer]
        eps = float(self.fitted.get("eps", self.config["eps"]))
        if eps > 0:
            with torch.enable_grad():
                xg = x.clone().requires_grad_(True)
                d = min_distance(pooled(self.upstream.taps(xg, precision="float32")[layer]), means, precision)
                (grad,) = torch.autograd.grad(d.sum(), xg)
            x = (x - eps * torch.sign(grad)).detach()
        with torch.no_grad():
            return min_distance(pooled(self.upstream.taps(x)[layer]), means, precision).cpu()

    def _scored(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, L) distances M_l, one column per layer, and the logits; without pre-processing,
        one pass of the classifier per batch gives every layer and the logits."""
        eps = float(self.fitted.get("eps", self.config["eps"]))
        cols, logits = [], []
        for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
            with torch.no_grad():
                taps = self.upstream.taps(x[idx])
            cols.append(torch.stack([self.layer_distance(x[idx], k) if eps > 0
                                     else min_distance(pooled(taps[k]), *self.gaussians[k]).cpu()
                                     for k in self.fitted["layers"]], dim=1))
            logits.append(taps["logits"].cpu())
        if not cols:
            return np.zeros((0, len(self.fitted["layers"]))), np.zeros((0, int(self.upstream.fitted["classes"])), np.float32)
        return torch.cat(cols).numpy(), torch.cat(logits).numpy()

    def layer_scores(self, x: torch.Tensor) -> np.ndarray:
        """(N, L) distances M_l, one column per layer."""
        return self._scored(x)[0]

    # -- fitting ---------------------------------------------------------------------------
    def _fit(self, data: FitData) -> None:
        self.fitted["layers"] = self._layers()
        if isinstance(data.x, ImageStream):  # fit_samples = 0 on a stream: running statistics of every image
            self._fit_stream(data)
            return
        x, labels = data.x, data.labels.numpy()
        n = int(self.config["fit_samples"])
        if 0 < n < len(x):
            keep = np.sort(np.random.default_rng(int(self.config["seed"])).choice(len(x), n, replace=False))
            x, labels = x[torch.from_numpy(keep)], labels[keep]
        feats = self.features(x)
        self.gaussians = {}
        for k in self.fitted["layers"]:
            means, precision = class_gaussians(feats[k], labels, int(self.upstream.fitted["classes"]))
            self.gaussians[k] = (torch.from_numpy(means), torch.from_numpy(precision))
        self._fit_combination(data.validation if data.validation is not None else x, data)

    def _fit_stream(self, data: FitData) -> None:
        """Class means and tied covariance of every image of a stream of (images, labels) batches,
        in one pass holding K means, K counts and one D x D scatter per layer (each batch's
        within-class scatter merged as Chan, Golub & LeVeque, "Algorithms for computing the sample
        variance", 1983); the same Gaussians as in memory, up to rounding."""
        classes = int(self.upstream.fitted["classes"])
        runs: dict[str, ClassMoments] = {k: ClassMoments(classes) for k in self.fitted["layers"]}
        for images, labels in data.x.pairs():
            if labels is None:
                raise InputError(f"{self.method}: needs the class labels of the training images; give batches of "
                                 "(images, labels) or a folder with one sub-folder per class")
            xb = as_images(images, "training images")
            yb = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
            if len(yb) != len(xb) or not np.issubdtype(yb.dtype, np.integer):
                raise InputError(f"{self.method}: a batch of {len(xb)} images came with labels of shape "
                                 f"{tuple(yb.shape)} and dtype {yb.dtype}; expected one class index per image")
            if yb.size and (yb.min() < 0 or yb.max() >= classes):
                raise InputError(f"{self.method}: training labels must be class indices 0..{classes - 1} of the "
                                 f"classifier, got {int(yb.min())}..{int(yb.max())}")
            for k, f in self.features(xb).items():
                runs[k].add(f, yb)
        self.gaussians = {k: tuple(torch.from_numpy(a) for a in run.gaussians(self.method)) for k, run in runs.items()}
        self._fit_stream_combination(data)

    def _fit_stream_combination(self, data: FitData) -> None:
        """Standardisation on the validation images, else on every training image of the stream (a second pass)."""
        if data.validation is not None:
            self._fit_combination(data.validation, data)
            return
        self.standardise(np.concatenate([self.layer_scores(as_images(b, "training images")) for b in data.x]))

    def _fit_combination(self, held_out: torch.Tensor, data: FitData) -> None:
        """Standardisation of each layer's distances on held-out in-distribution images."""
        self.standardise(self.layer_scores(held_out))

    def standardise(self, id_scores: np.ndarray) -> None:
        """loc and scale: each layer's mean and standard deviation on in-distribution images."""
        self.loc = torch.from_numpy(id_scores.mean(axis=0))
        self.scale = torch.from_numpy(np.maximum(id_scores.std(axis=0), 1e-12))

    def combine(self, scores: np.ndarray) -> np.ndarray:
        """One score per image from the (N, L) layer distances."""
        return ((scores - self.loc.numpy()) / self.scale.numpy()).sum(axis=1)

    # -- scoring and persistence -----------------------------------------------------------
    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        layers, logits = self._scored(x)
        return {"score": self.combine(layers), "layer_scores": layers, "logits": logits}

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {f"{PREFIX}.{k}.means": m for k, (m, _) in self.gaussians.items()}
        out.update({f"{PREFIX}.{k}.precision": p for k, (_, p) in self.gaussians.items()})
        out.update({f"{PREFIX}.{k}": getattr(self, k) for k in self.stats})
        return out

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        load_modules(self.all_modules(), weights, path, extra=(PREFIX,))
        mine = {k[len(PREFIX) + 1:]: v.double() for k, v in weights.items() if k.startswith(PREFIX + ".")}
        layers = self.fitted["layers"]
        want = {f"{k}.{t}" for k in layers for t in ("means", "precision")} | set(self.stats)
        if set(mine) != want:
            raise ModelFileError(f"{path}: expected the tensors {sorted(want)} under '{PREFIX}.', got {sorted(mine)}")
        self.gaussians = {k: (mine[f"{k}.means"], mine[f"{k}.precision"]) for k in layers}
        for k in self.stats:
            size = 1 if k == "intercept" else len(layers)
            if tuple(mine[k].shape) != (size,):
                raise ModelFileError(f"{path}: {PREFIX}.{k} has shape {tuple(mine[k].shape)}, not ({size},)")
            setattr(self, k, mine[k])
