"""Normalised compression distance of feature maps (Yu, Lee & Yu, "Out-of-distribution image
detection using the normalized compression distance", ICLR 2020 submission; published as MALCOM,
"Convolutional neural networks with compression complexity pooling for out-of-distribution image
detection", IJCAI 2020).

A classifier f of the in-distribution classes (:class:`~oodscope.upstream.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) is read post hoc: no outliers, no
retraining. Each channel k of a selected spatial layer, flattened over its positions, is read as
a sequence, quantised to bytes with the layer's global range [lo, hi] over the training images:

    q(v) = clip(round((v - lo) * 255 / (hi - lo)), 0, 255)   (uint8).

With C(s) the length of ``zlib.compress(s, 9)``, the normalised compression distance is

    NCD(a, b) = (C(ab) - min(C(a), C(b))) / max(C(a), C(b))     (ab: a then b).

The reference sequence ref_{c,k} of class c and channel k is the quantised mean feature map of
the training images of class c. Per layer, the feature of x for class c is

    v_c(x) = [GAP_1(x), ..., GAP_K(x), NCD(x_1, ref_{c,1}), ..., NCD(x_K, ref_{c,K})]

(GAP: global average pooling of each channel), and class-conditional Gaussians with a tied
covariance are fitted on the training images' own-class vectors v_{y}(x): means mu_c and one
covariance Sigma. The layer score is the smallest squared Mahalanobis distance,

    S_l(x) = min_c (v_c(x) - mu_c)^T Sigma^+ (v_c(x) - mu_c),

and the score, higher = more out-of-distribution, is s(x) = sum_l S_l(x): no outliers and no
logistic regression on OOD data (the paper's point).

Our choices where the paper leaves room:

* ``layers``: spatial taps of the classifier (empty = all of them: for the LeNet z1 and z2);
* ``fit_samples`` training images (default 2000, drawn with ``seed``; all when fewer) give the
  ranges, references and Gaussians, to bound the compression work; a class absent from them
  takes the mean over all of them;
* Sigma^+ is the pseudo-inverse of the tied covariance (eigenvalues below 1e-10 of the largest
  are dropped: dead channels have none), the Mahalanobis distance is the squared one of Lee et
  al. (2018), layers are summed unweighted;
* feature values outside the training range are clipped to 0 or 255.

Cost: scoring compresses, per image, each channel once and each channel with each class's
reference once ((1 + number of classes) x channels calls of zlib on a few hundred bytes). On
split-mnist (6 classes, the LeNet's 32 + 64 channels: 672 calls) that measured about 14 ms per
image on one CPU core, network included (10,000 test images in 138 s); fitting on the default
2000 images took 8 s (besides the classifier).

``outputs(x)`` also returns the logits.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from oodscope.detectors.base import FitData
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register
from oodscope.training.core import batches, merge_presets
from oodscope.errors import InputError, ModelFileError

NCD_DEFAULTS: dict[str, Any] = {
    **CLASSIFIER_DEFAULTS,
    "layers": [],
    "fit_samples": 2000,
}
NCD_PRESETS = merge_presets(CLASSIFIER_PRESETS, {"smoke": {"fit_samples": 300}})
PREFIX = "ncd"  # of the saved tensors
LEVEL = 9  # zlib compression level
RCOND = 1e-10  # relative cut-off of the pseudo-inverse


def compressed_size(data: bytes) -> int:
    """C(s): the length of ``zlib.compress(s, 9)``."""
    return len(zlib.compress(data, LEVEL))


def ncd(a: bytes, b: bytes, size_a: int | None = None, size_b: int | None = None) -> float:
    """NCD(a, b) = (C(ab) - min(C(a), C(b))) / max(C(a), C(b)); known C(a), C(b) may be passed."""
    ca = compressed_size(a) if size_a is None else size_a
    cb = compressed_size(b) if size_b is None else size_b
    return (compressed_size(a + b) - min(ca, cb)) / max(ca, cb)


def quantise(maps: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Feature values -> uint8 after the min-max scaling of [lo, hi] to [0, 255] (clipped)."""
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((np.asarray(maps, np.float64) - lo) * scale), 0, 255).astype(np.uint8)


def ncd_to_references(q: np.ndarray, refs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """NCD(x_k, ref_{c,k}) of quantised maps ``q`` (N, K, L) against references ``refs`` (classes,
    K, L) for the classes ``classes[i]`` (N, m) of each image: (N, m, K)."""
    ref_bytes = [[r.tobytes() for r in per_class] for per_class in refs]
    ref_sizes = [[compressed_size(b) for b in per_class] for per_class in ref_bytes]
    out = np.empty((q.shape[0], classes.shape[1], q.shape[1]))
    for i in range(q.shape[0]):
        for k in range(q.shape[1]):
            a = q[i, k].tobytes()
            ca = compressed_size(a)
            for j, c in enumerate(classes[i]):
                out[i, j, k] = ncd(a, ref_bytes[c][k], ca, ref_sizes[c][k])
    return out


def tied_gaussians(vectors: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class means (classes, D) and the pseudo-inverse of the tied covariance (D, D) of
    ``vectors`` (N, D); a class without vectors gets the mean of all."""
    means = np.stack([vectors[labels == c].mean(axis=0) if (labels == c).any() else vectors.mean(axis=0)
                      for c in range(classes)])
    centred = vectors - means[labels]
    cov = centred.T @ centred / len(vectors)
    return means, np.linalg.pinv(cov, rcond=RCOND, hermitian=True)


def min_mahalanobis(vectors: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """min_c (v_c - mu_c)^T P (v_c - mu_c) for ``vectors`` (N, classes, D)."""
    d = vectors - means[None]
    return np.einsum("nkd,de,nke->nk", d, precision, d).min(axis=1)


@register
class NCDDetector(LogitScoreDetector):
    method = "ncd"
    paper = ('Yu, Lee & Yu, "Convolutional neural networks with compression complexity pooling for '
             'out-of-distribution image detection" (MALCOM), IJCAI 2020')
    help = {
        "layers": "spatial taps of the classifier read; [] = all of them",
        "fit_samples": "training images giving ranges, references and Gaussians, drawn with seed (all when fewer)",
    }
    defaults = NCD_DEFAULTS
    presets = NCD_PRESETS
    order = 57

    def _check_config(self) -> None:
        super()._check_config()
        if self.config["fit_samples"] < 1:
            raise InputError(f"ncd: fit_samples must be at least 1, got {self.config['fit_samples']}")
        layers = self.config["layers"]
        if not all(isinstance(k, str) for k in layers) or len(set(layers)) != len(layers):
            raise InputError(f"ncd: layers must be distinct tap names, got {layers!r}")

    @property
    def layers(self) -> list[str]:
        return self.fitted[PREFIX]["layers"]

    # -- fitting ---------------------------------------------------------------------------
    def _select_layers(self) -> dict[str, tuple[int, int]]:
        """The layers read and their (channels, positions), checked against the classifier's taps."""
        shapes = {k: s for k, s in self.upstream.tap_shapes.items() if k != "logits"}
        spatial = [k for k, s in shapes.items() if len(s) == 3]
        layers = list(self.config["layers"]) or spatial
        unknown = [k for k in layers if k not in shapes]
        if unknown:
            raise InputError(f"ncd: unknown layers {unknown}; the {self.config['arch']} classifier's spatial taps "
                             f"are {', '.join(spatial)}")
        flat = [k for k in layers if k not in spatial]
        if flat:
            raise InputError(f"ncd: layers {flat} are vectors, not feature maps; spatial taps: {', '.join(spatial)}")
        return {k: (shapes[k][0], shapes[k][1] * shapes[k][2]) for k in layers}

    @torch.no_grad()
    def _maps(self, x: torch.Tensor):
        """Per batch of ``x``: the selected layers' maps (n, K, L) as float64 NumPy and the logits."""
        for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
            taps = self.upstream.taps(x[idx])
            maps = {k: taps[k].cpu().double().flatten(2).numpy() for k in self.layers}
            yield idx, maps, taps["logits"].cpu()

    def _fit(self, data: FitData) -> None:
        shapes = self._select_layers()
        self.fitted[PREFIX] = {"layers": list(shapes)}
        classes = int(self.upstream.fitted["classes"])
        g = torch.Generator().manual_seed(int(self.config["seed"]))
        pick = torch.randperm(data.x.shape[0], generator=g)[: int(self.config["fit_samples"])]
        x, labels = data.x[pick], data.labels[pick].numpy()
        counts = np.bincount(labels, minlength=classes)
        # pass 1: each layer's range and each class's mean map
        lo = {k: np.inf for k in shapes}
        hi = {k: -np.inf for k in shapes}
        sums = {k: np.zeros((classes, *s)) for k, s in shapes.items()}
        for idx, maps, _ in self._maps(x):
            for k, m in maps.items():
                lo[k], hi[k] = min(lo[k], float(m.min())), max(hi[k], float(m.max()))
                np.add.at(sums[k], labels[idx.numpy()], m)
        self.ranges = {k: np.array([lo[k], hi[k]]) for k in shapes}
        self.refs = {}
        for k in shapes:
            mean_all = sums[k].sum(axis=0) / len(labels)
            means = [sums[k][c] / counts[c] if counts[c] else mean_all for c in range(classes)]
            self.refs[k] = quantise(np.stack(means), lo[k], hi[k])
        # pass 2: the own-class vectors, then the tied Gaussians
        vectors: dict[str, list[np.ndarray]] = {k: [] for k in shapes}
        for idx, maps, _ in self._maps(x):
            own = labels[idx.numpy()][:, None]
            for k, m in maps.items():
                vectors[k].append(self._vectors(k, m, own)[:, 0])
        self.means, self.precisions = {}, {}
        for k in shapes:
            self.means[k], self.precisions[k] = tied_gaussians(np.concatenate(vectors[k]), labels, classes)
        self.fitted[PREFIX].update({
            "channels": {k: s[0] for k, s in shapes.items()},
            "positions": {k: s[1] for k, s in shapes.items()},
            "fit_images": int(len(labels)),
            "per_class": counts.tolist(),
        })

    # -- scoring ---------------------------------------------------------------------------
    def _vectors(self, layer: str, maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """v_c for each image and each class of ``classes`` (N, m): (N, m, 2K)."""
        lo, hi = self.ranges[layer]
        d = ncd_to_references(quantise(maps, lo, hi), self.refs[layer], classes)
        gap = np.broadcast_to(maps.mean(axis=2)[:, None, :], d.shape)
        return np.concatenate([gap, d], axis=2)

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        classes = int(self.upstream.fitted["classes"])
        score = np.zeros(x.shape[0])
        logits = []
        for idx, maps, lg in self._maps(x):
            every = np.broadcast_to(np.arange(classes), (len(idx), classes))
            for k, m in maps.items():
                score[idx.numpy()] += min_mahalanobis(self._vectors(k, m, every), self.means[k], self.precisions[k])
            logits.append(lg)
        return {"score": score, "logits": torch.cat(logits).numpy()}

    # -- persistence -----------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for k in self.layers:
            out[f"{PREFIX}.{k}.range"] = torch.from_numpy(self.ranges[k])
            out[f"{PREFIX}.{k}.refs"] = torch.from_numpy(self.refs[k])
            out[f"{PREFIX}.{k}.means"] = torch.from_numpy(self.means[k])
            out[f"{PREFIX}.{k}.precision"] = torch.from_numpy(self.precisions[k])
        return out

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        own = {k: v for k, v in weights.items() if k.startswith(PREFIX + ".")}
        super()._restore({k: v for k, v in weights.items() if k not in own}, path)
        facts = self.fitted.get(PREFIX) or {}
        classes = int(self.upstream.fitted["classes"])
        expected: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for k in facts.get("layers", []):
            c, n = int(facts["channels"][k]), int(facts["positions"][k])
            expected[f"{PREFIX}.{k}.range"] = ((2,), torch.float64)
            expected[f"{PREFIX}.{k}.refs"] = ((classes, c, n), torch.uint8)
            expected[f"{PREFIX}.{k}.means"] = ((classes, 2 * c), torch.float64)
            expected[f"{PREFIX}.{k}.precision"] = ((2 * c, 2 * c), torch.float64)
        if not expected or set(own) != set(expected):
            raise ModelFileError(f"{path}: ncd tensors {sorted(own)} do not match the saved layers {facts.get('layers')}")
        for name, (shape, dtype) in expected.items():
            if tuple(own[name].shape) != shape or own[name].dtype != dtype:
                raise ModelFileError(f"{path}: tensor {name} has shape {tuple(own[name].shape)} ({own[name].dtype}), "
                                     f"expected {shape} ({dtype})")
        take = {field: {k: own[f"{PREFIX}.{k}.{field}"].numpy() for k in self.layers}
                for field in ("range", "refs", "means", "precision")}
        self.ranges, self.refs, self.means, self.precisions = take["range"], take["refs"], take["means"], take["precision"]
