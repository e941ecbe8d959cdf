"""Reference tests of the second batch of post hoc detectors on the penultimate features (OpenOOD
v1.5's post hoc ranking), each score re-implemented here in NumPy / SciPy (GradNorm's and NAC's
gradients also by torch autograd) from its paper's formula and compared with what the detector
returns, on the tiny digits classifier of ``test_reference`` (its network run by the test itself,
no oodscope helper in the computation), and each saved and loaded to the same scores.

Papers:

* vim: Wang, Li, Feng & Zhang, "ViM: out-of-distribution with virtual-logit matching", CVPR 2022
  (origin -pinv(W) b, principal dimension D // 2 below D = 768 as the authors' code, returned as
  the logit of the virtual class's softmax probability);
* rmds: Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A simple fix to Mahalanobis distance for
  improving near-OOD detection", 2021;
* fdbd: Liu & Qin, "Fast decision boundary based out-of-distribution detector", ICML 2024;
* nnguide: Park, Jung & Teoh, "Nearest neighbor guidance for out-of-distribution detection", ICCV 2023;
* gradnorm: Huang, Geng & Li, "On the importance of gradients for detecting distributional shifts
  in the wild", NeurIPS 2021;
* nac: Liu, Tian, Li, Ma & Wang, "Neuron activation coverage: rethinking out-of-distribution
  detection and generalization", ICLR 2024 (the interval thresholds of the authors' coverage.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp, softmax
from test_reference import _fit, clf, data  # noqa: F401  (pytest fixtures)
from test_reference_posthoc import _features

from oodscope.detectors import create, load
from oodscope.errors import InputError

RTOL = 1e-6


def _reloaded(det, tmp_path, images: np.ndarray) -> None:
    again = load(det.save(tmp_path / det.method))
    np.testing.assert_array_equal(again.score(images), det.score(images))


# -- vim --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 5])
def test_vim(data, clf, dim, tmp_path) -> None:
    """o = -pinv(W) b; the principal subspace of the training features centred at o, by SVD here;
    v = alpha ||residual||, alpha = sum max logit / sum ||residual|| over the training images;
    s = v - logsumexp(z), the logit of softmax([z, v])'s virtual probability."""
    det = _fit("vim", data, upstream=clf.upstream, dim=dim)
    h_train, w, b = _features(det, data["x"])
    d_p = dim or h_train.shape[1] // 2  # D = 16 < 768: D // 2, as the authors' benchmark.py
    assert det.fitted["dim"] == d_p
    o = -np.linalg.pinv(w) @ b
    _, _, vt = np.linalg.svd(h_train - o, full_matrices=True)  # rows: eigenvectors, largest first
    null = vt[d_p:].T
    z_train = h_train @ w.T + b
    alpha = z_train.max(axis=1).sum() / np.linalg.norm((h_train - o) @ null, axis=1).sum()
    h, _, _ = _features(det, data["eval"])
    z = h @ w.T + b
    v = alpha * np.linalg.norm((h - o) @ null, axis=1)
    want = v - logsumexp(z, axis=1)
    got = det.score(data["eval"])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    p_virtual = softmax(np.c_[z, v], axis=1)[:, -1]  # the paper's score: the virtual class's probability
    np.testing.assert_allclose(expit(got), p_virtual, rtol=1e-9)
    _reloaded(det, tmp_path, data["eval"])


def test_vim_dim_is_checked(data, clf) -> None:
    with pytest.raises(InputError, match="dim must be >= 0"):
        _fit("vim", data, upstream=clf.upstream, dim=-1)
    with pytest.raises(InputError, match=r"dim must be in \[1, 15\]"):
        _fit("vim", data, upstream=clf.upstream, dim=16)


# -- rmds -------------------------------------------------------------------------------------------
def test_rmds(data, clf, tmp_path) -> None:
    """min_k [MD_k(h) - MD_0(h)]: class Gaussians with the tied covariance (1/N) sum (h - mu_y)(h - mu_y)^T,
    the background Gaussian of all training features; squared distances, pseudo-inverses."""
    det = _fit("rmds", data, upstream=clf.upstream)
    h_train, _, _ = _features(det, data["x"])
    y = data["y"]
    classes = np.unique(y)
    means = np.stack([h_train[y == c].mean(axis=0) for c in classes])
    within = h_train - means[np.searchsorted(classes, y)]
    p_class = np.linalg.pinv(within.T @ within / len(within))
    mu0 = h_train.mean(axis=0)
    p_bg = np.linalg.pinv(np.cov(h_train.T, bias=True))
    h, _, _ = _features(det, data["eval"])

    def md(x: np.ndarray, mu: np.ndarray, prec: np.ndarray) -> np.ndarray:
        return np.einsum("nd,de,ne->n", x - mu, prec, x - mu)

    want = np.min([md(h, m, p_class) for m in means], axis=0) - md(h, mu0, p_bg)
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL, atol=1e-9)
    _reloaded(det, tmp_path, data["eval"])
    keep = y != 2
    with pytest.raises(InputError, match="no image"):
        _fit("rmds", data, upstream=clf.upstream, x=data["x"][keep], y=y[keep])


# -- fdbd -------------------------------------------------------------------------------------------
def test_fdbd(data, clf, tmp_path) -> None:
    """-(1/(K-1)) sum_{j != c} |(w_c - w_j).h + b_c - b_j| / ||w_c - w_j||, over ||h - mean of the
    training features||; c the predicted class. Written as a plain loop."""
    det = _fit("fdbd", data, upstream=clf.upstream)
    h_train, w, b = _features(det, data["x"])
    mu = h_train.mean(axis=0)
    h, _, _ = _features(det, data["eval"])
    k = len(b)
    want = []
    for x in h:
        c = int(np.argmax(w @ x + b))
        dist = sum(abs((w[c] - w[j]) @ x + b[c] - b[j]) / np.linalg.norm(w[c] - w[j]) for j in range(k) if j != c)
        want.append(-dist / (k - 1) / np.linalg.norm(x - mu))
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    _reloaded(det, tmp_path, data["eval"])


# -- nnguide ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [10, 1])
def test_nnguide(data, clf, k, tmp_path) -> None:
    """Bank: unit training features times their logsumexp confidence; guidance: the mean of the k
    largest inner products of the unit feature with the bank; s = -guidance * logsumexp(z)."""
    det = _fit("nnguide", data, upstream=clf.upstream, k=k)
    h_train, w, b = _features(det, data["x"])
    bank = h_train / np.linalg.norm(h_train, axis=1, keepdims=True) * logsumexp(h_train @ w.T + b, axis=1)[:, None]
    h, _, _ = _features(det, data["eval"])
    sims = (h / np.linalg.norm(h, axis=1, keepdims=True)) @ bank.T
    guidance = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
    want = -guidance * logsumexp(h @ w.T + b, axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    _reloaded(det, tmp_path, data["eval"])
    with pytest.raises(InputError, match="exceeds the bank"):
        _fit("nnguide", data, upstream=clf.upstream, k=len(data["x"]) + 1)


# -- gradnorm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_gradnorm(data, clf, temperature, tmp_path) -> None:
    """-sum |dKL(u || softmax(z/T)) / dW| of the last layer's weight, by autograd here, image by image."""
    det = _fit("gradnorm", data, upstream=clf.upstream, temperature=temperature)
    h, w, b = _features(det, data["eval"])
    fc = torch.nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w))
        fc.bias.copy_(torch.from_numpy(b))
    k = w.shape[0]
    want = []
    for x in torch.from_numpy(h):
        fc.zero_grad()
        log_p = torch.log_softmax(fc(x[None]) / temperature, dim=1)
        kl = (torch.full((1, k), 1.0 / k) * (np.log(1.0 / k) - log_p)).sum()
        kl.backward()
        want.append(-fc.weight.grad.abs().sum().item())
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    _reloaded(det, tmp_path, data["eval"])


# -- nac --------------------------------------------------------------------------------------------
def _nac_thresholds(m: int) -> np.ndarray:
    """coverage.py's logspace(1e3, M): M/2 points log_1000-spaced in [0, 0.5], mirrored to [0.5, 1],
    the last raised by 0.01, then 1.2 appended."""
    left = np.emath.logn(1e3, np.linspace(1, np.sqrt(1e3), m // 2))
    t = np.concatenate([left[:-1], (1 - left)[::-1]])
    t[-1] += 1e-2
    return np.append(t, 1.2)


@pytest.mark.parametrize("settings", [{}, {"alpha": 10.0, "r": 100.0, "m": 30}])
def test_nac(data, clf, settings, tmp_path) -> None:
    """States sigmoid(alpha h * dKL(u || softmax(z))/dh) (the gradient by autograd here); per
    neuron, training images counted in the intervals [t_j, t_{j+1}) of the M thresholds;
    s = -mean over neurons of min(count of x's interval / r, 1). Defaults M = 50, r = 50, alpha = 100."""
    det = _fit("nac", data, upstream=clf.upstream, **settings)
    alpha, r, m = settings.get("alpha", 100.0), settings.get("r", 50.0), settings.get("m", 50)
    h_train, w, b = _features(det, data["x"])
    h, _, _ = _features(det, data["eval"])
    k = len(b)

    def states(feats: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(feats).requires_grad_(True)
        log_p = torch.log_softmax(x @ torch.from_numpy(w).T + torch.from_numpy(b), dim=1)
        kl = (1.0 / k * (np.log(1.0 / k) - log_p)).sum()  # summed over images: each row its own gradient
        (grad,) = torch.autograd.grad(kl, x)
        return expit(alpha * feats * grad.numpy())

    t = _nac_thresholds(m)
    s_train, s = states(h_train), states(h)
    inside = (s_train[:, None, :] >= t[None, :-1, None]) & (s_train[:, None, :] < t[None, 1:, None])  # (N, M-1, D)
    counts = inside.sum(axis=0)
    want = []
    for row in s:
        cover = [min(counts[j, i] / r, 1.0) for i, v in enumerate(row) for j in range(m - 1) if t[j] <= v < t[j + 1]]
        assert len(cover) == len(row)  # every state falls in one interval
        want.append(-np.mean(cover))
    got = det.score(data["eval"])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert len(np.unique(got)) > 5  # the score separates images
    _reloaded(det, tmp_path, data["eval"])


def test_nac_settings_are_checked() -> None:
    for bad, match in [({"m": 21}, "even"), ({"m": 2}, "even"), ({"r": 0.0}, "r must be positive"),
                       ({"alpha": -1.0}, "alpha must be positive")]:
        with pytest.raises(InputError, match=match):
            create("nac", **bad)
