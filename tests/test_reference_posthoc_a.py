"""Reference tests of the post hoc detectors of issue 35 (part A), each score re-implemented here in
NumPy / SciPy from its paper's formula and compared with what the detector returns, on the tiny
digits classifier of ``test_reference`` (its network run by the test itself, no oodscope helper in
the computation); each also saved and loaded again with identical scores.

Papers:

* ash: Djurisic, Bozanic, Ashok & Liu, "Extremely simple activation shaping for out-of-distribution
  detection", ICLR 2023 (per image: the k = D - round(D p / 100) largest entries kept; pruned,
  binarised to s1 / k or scaled by exp(s1 / s2); energy of the head);
* scale: Xu, Chen, Franchi & Yao, "Scaling for training time and post-hoc out-of-distribution
  detection enhancement", ICLR 2024 (the unpruned vector scaled by exp(s1 / s2));
* dice: Sun & Li, "DICE: leveraging sparsification for out-of-distribution detection", ECCV 2022
  (weights with mean-feature contribution above the p-th percentile kept);
* gen: Liu, Lochman & Zach, "GEN: pushing the limits of softmax-based out-of-distribution
  detection", CVPR 2023 (sum over the M largest probabilities of p^gamma (1 - p)^gamma);
* she: Zhang et al., "Out-of-distribution detection based on in-distribution data patterns
  memorization with modern Hopfield energy", ICLR 2023 (-h . mean of the correctly classified
  training features of the predicted class; all of the class's features where none is correct);
* knn-clf: Sun, Ming, Zhu & Li, "Out-of-distribution detection with deep nearest neighbors",
  ICML 2022 (distance to the k-th nearest normalised training feature).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from test_reference import _clf_taps, _fit, _images, clf, data  # noqa: F401  (pytest fixtures)

from oodscope.detectors import create, load
from oodscope.errors import InputError

RTOL = 1e-6


def _features(det, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Penultimate features, logits, W and b of the detector's classifier (float64), run by the test."""
    with torch.no_grad():
        taps = _clf_taps(det, _images(images))
    fc = det.upstream.net.fc
    return (taps[det.upstream.penultimate].double().numpy(), taps["logits"].double().numpy(),
            fc.weight.detach().double().numpy(), fc.bias.detach().double().numpy())


def _energy(h: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -logsumexp(h @ w.T + b, axis=1)


def _same_after_loading(det, images: np.ndarray, path) -> None:
    np.testing.assert_array_equal(load(det.save(path)).score(images), det.score(images))


# -- ash, scale --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant, percentile", [("p", 90.0), ("b", 90.0), ("s", 90.0), ("s", 65.0), ("b", 80.0)])
def test_ash(data, clf, variant, percentile, tmp_path) -> None:
    det = _fit("ash", data, upstream=clf.upstream, variant=variant, percentile=percentile)
    h, _, w, b = _features(det, data["eval"])
    d = h.shape[1]
    k = d - int(np.round(d * percentile / 100))
    desc = -np.sort(-h, axis=1)
    assert 1 <= k < d and np.all(desc[:, k - 1] > desc[:, k])  # no tie at the k-th value: the kept set is defined
    keep = h >= desc[:, [k - 1]]
    s1 = h.sum(axis=1, keepdims=True)
    if variant == "p":
        a = np.where(keep, h, 0.0)
    elif variant == "b":
        a = np.where(keep, s1 / k, 0.0)
    else:
        pruned = np.where(keep, h, 0.0)
        a = pruned * np.exp(s1 / pruned.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(det.score(data["eval"]), _energy(a, w, b), rtol=RTOL)
    out = det.outputs(data["eval"])  # the model's own logits, unshaped
    np.testing.assert_allclose(out["logits"], h @ w.T + b, rtol=1e-5, atol=1e-5)
    _same_after_loading(det, data["eval"], tmp_path / "ash")


@pytest.mark.parametrize("percentile", [85.0, 60.0])
def test_scale(data, clf, percentile, tmp_path) -> None:
    det = _fit("scale", data, upstream=clf.upstream, percentile=percentile)
    h, _, w, b = _features(det, data["eval"])
    d = h.shape[1]
    k = d - int(np.round(d * percentile / 100))
    s2 = -np.sort(-h, axis=1)[:, :k].sum(axis=1, keepdims=True)
    r = h.sum(axis=1, keepdims=True) / s2
    assert np.all(r >= 1) and np.any(r > 1)  # the pruning that measures r removes positive activations
    np.testing.assert_allclose(det.score(data["eval"]), _energy(np.exp(r) * h, w, b), rtol=RTOL)
    _same_after_loading(det, data["eval"], tmp_path / "scale")


def test_ash_and_scale_refuse_a_percentile_that_keeps_nothing(data, clf) -> None:
    for method in ("ash", "scale"):
        with pytest.raises(InputError, match="percentile"):
            create(method, percentile=100.0)
        with pytest.raises(InputError, match="keeps no entry of the 16-dimensional"):
            _fit(method, data, upstream=clf.upstream, percentile=99.0)  # 16 units: round(15.84) = 16 pruned


# -- dice --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [90.0, 50.0])
def test_dice(data, clf, sparsity, tmp_path) -> None:
    det = _fit("dice", data, upstream=clf.upstream, sparsity=sparsity)
    h_train, _, w, b = _features(det, data["x"])  # fit_samples (10000) > the training images: all of them
    contrib = h_train.mean(axis=0)[None, :] * w
    mask = contrib > np.percentile(contrib, sparsity)
    assert 0 < mask.sum() < mask.size
    h, _, _, _ = _features(det, data["eval"])
    np.testing.assert_allclose(det.score(data["eval"]), _energy(h, w * mask, b), rtol=RTOL)
    assert det.fitted["kept_weights"] == int(mask.sum())
    _same_after_loading(det, data["eval"], tmp_path / "dice")


# -- gen ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma, top_m", [(0.1, 100), (0.5, 3)])
def test_gen(data, clf, gamma, top_m, tmp_path) -> None:
    det = _fit("gen", data, upstream=clf.upstream, gamma=gamma, top_m=top_m)
    _, z, _, _ = _features(det, data["eval"])
    p = -np.sort(-softmax(z, axis=1), axis=1)[:, :min(top_m, z.shape[1])]  # M capped at the 5 classes
    want = np.sum(p ** gamma * (1 - p) ** gamma, axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    grad_free = det.differentiable_score(_images(data["eval"])).detach().double().numpy()
    np.testing.assert_allclose(grad_free, want, rtol=1e-5)  # the torch form attacks read
    _same_after_loading(det, data["eval"], tmp_path / "gen")


# -- she ---------------------------------------------------------------------------------------------
def test_she(data, clf, tmp_path) -> None:
    """A class with no correctly classified training image (this barely trained classifier has
    some) takes the mean of all its training images."""
    det = _fit("she", data, upstream=clf.upstream)
    h_train, z_train, _, _ = _features(det, data["x"])
    y = data["y"]
    correct = z_train.argmax(axis=1) == y
    patterns, filtered = [], 0
    for c in range(5):
        right = correct & (y == c)
        patterns.append(h_train[right if right.any() else y == c].mean(axis=0))
        filtered += bool(right.any() and (right != (y == c)).any())
    assert filtered  # in some class the misclassified images are left out: the filter is exercised
    assert det.fitted["fallback_classes"] == [c for c in range(5) if not (correct & (y == c)).any()]
    h, z, _, _ = _features(det, data["eval"])
    want = -np.sum(h * np.stack(patterns)[z.argmax(axis=1)], axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    _same_after_loading(det, data["eval"], tmp_path / "she")
    with pytest.raises(InputError, match="no training image among the 3 fit images"):
        _fit("she", data, upstream=clf.upstream, fit_samples=3)  # 3 images cannot hold the 5 classes


# -- knn-clf -----------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@pytest.mark.parametrize("k, fit_samples", [(50, 0), (3, 200)])
def test_knn_clf(data, clf, k, fit_samples, tmp_path) -> None:
    det = _fit("knn-clf", data, upstream=clf.upstream, k=k, fit_samples=fit_samples)
    x = data["x"]
    if fit_samples:  # the base draws the sample with the seed (0), sorted
        x = x[np.sort(np.random.default_rng(0).choice(len(x), fit_samples, replace=False))]
    bank = _unit(_features(det, x)[0])
    z = _unit(_features(det, data["eval"])[0])
    dist = np.sqrt(((z[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2))
    want = np.sort(dist, axis=1)[:, k - 1]
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    assert det.fitted["bank_size"] == len(x)
    _same_after_loading(det, data["eval"], tmp_path / "knn")


def test_settings_out_of_bounds_are_refused() -> None:
    for method, bad in [("ash", {"percentile": -1.0}), ("ash", {"variant": "x"}), ("scale", {"percentile": 100.0}),
                        ("dice", {"sparsity": 100.0}), ("gen", {"gamma": 0.0}), ("gen", {"top_m": 0}),
                        ("knn-clf", {"k": 0}), ("she", {"fit_samples": -1})]:
        with pytest.raises(InputError, match=method):
            create(method, **bad)
