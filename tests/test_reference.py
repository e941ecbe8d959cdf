"""Reference tests: every closed-form score and metric of oodscope re-implemented here from its
paper's formula (NumPy, SciPy, zlib or plain torch; no oodscope helper does any of the
computation) and compared numerically with what the detector or metric returns.

The networks are tiny and trained on scikit-learn's digits (classes 0-4 in-distribution, 5-6 out).
The references read only the trained modules and what the detectors learnt at fit time that is not
a closed-form function of the data (network weights, DeConf/DGC/branch heads, the logistic
regression and the eps chosen by ``mahalanobis-tuned``), run the network themselves from the
normalised images and recompute every statistic (class means, covariances, ranges, references,
standardisation constants, temperatures) from the images. They compare float32 network outputs
(ODIN and Mahalanobis also under bfloat16 scoring, through the same autocast forward pass, with
their pre-processing gradient in float32), so the detectors agree to about 1e-6 relative;
tolerances are rtol 1e-5 unless a comment says why.

Papers:

* msp: Hendrycks & Gimpel, "A baseline for detecting misclassified and out-of-distribution
  examples in neural networks", ICLR 2017 (also AUROC, AUPR-in/out, FPR at 95 % TPR);
* energy: Liu, Wang, Owens & Li, "Energy-based out-of-distribution detection", NeurIPS 2020;
* max-logit: Hendrycks et al., "Scaling out-of-distribution detection for real-world settings",
  ICML 2022;
* odin: Liang, Li & Srikant, "Enhancing the reliability of out-of-distribution image detection in
  neural networks", ICLR 2018 (the step in pixel units, as the authors' calData.py);
* mahalanobis, mahalanobis-tuned: Lee, Lee, Lee & Shin, "A simple unified framework for detecting
  out-of-distribution samples and adversarial attacks", NeurIPS 2018 (the step in pixel units, as
  the authors' lib_generation.py; the minimum over class Gaussians estimated from the fit sample,
  which must hold every class);
* gram: Sastry & Oore, "Detecting out-of-distribution examples with Gram matrices", ICML 2020;
* ncd: Yu, Lee & Yu, "Convolutional neural networks with compression complexity pooling for
  out-of-distribution image detection" (MALCOM), IJCAI 2020;
* prior-net: Malinin & Gales, "Predictive uncertainty estimation via prior networks", NeurIPS 2018;
* generalized-odin: Hsu, Shen, Jin & Kira, "Generalized ODIN: detecting out-of-distribution image
  without learning from out-of-distribution data", CVPR 2020;
* dgc: Lee, Yu & Yu, "Multi-class data description for out-of-distribution detection", KDD 2020;
* layerwise-uncertainty: "Out-of-distribution detection using layerwise uncertainty in deep neural
  networks", ICLR 2020 submission (anonymous);
* ensemble: Lakshminarayanan, Pritzel & Blundell, "Simple and scalable predictive uncertainty
  estimation using deep ensembles", NeurIPS 2017; mc-dropout: Gal & Ghahramani, "Dropout as a
  Bayesian approximation: representing model uncertainty in deep learning", ICML 2016 (mutual
  information, entropy, variation ratio of Freeman 1965, maximum probability);
* temperature scaling and ECE: Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural
  networks", ICML 2017 (ECE after Naeini, Cooper & Hauskrecht, AAAI 2015), both forms of
  conf(B_m): the mean confidence of the bin and its centre;
* FPR95 as OpenOOD computes it: Zhang et al., "OpenOOD v1.5: enhanced benchmark for
  out-of-distribution detection", 2023; AUPR as average precision (scikit-learn's definition).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import digamma, logsumexp, softmax
from scipy.stats import multivariate_normal

from oodscope.calibration import expected_calibration_error
from oodscope.data import load
from oodscope.detectors import create
from oodscope.errors import InputError
from oodscope.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr

torch.set_num_threads(1)

ID_CLASSES = [0, 1, 2, 3, 4]
# float32 scoring (the default; bfloat16 autocast training, the default too)
TINY: dict = {"widths": [4, 8], "hidden": 16, "epochs": 3, "batch_size": 64, "progress": False, "precision": "float32"}
RTOL = 1e-5


# -- data and the shared classifier ----------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    train, test = load("digits", "train"), load("digits", "test")
    inside, t_in = np.isin(train.labels, ID_CLASSES), np.isin(test.labels, ID_CLASSES)
    ti, tl = test.images[t_in], test.labels[t_in]
    ood = test.images[np.isin(test.labels, [5, 6])][:40]
    return {"x": train.images[inside], "y": train.labels[inside], "val": ti[:150], "val_y": tl[:150],
            "eval": np.concatenate([ti[150:190], ood]), "eval_y": tl[150:190],
            "outliers": train.images[np.isin(train.labels, [7, 8, 9])][:48]}


def _fit(method: str, d: dict[str, np.ndarray], upstream=None, x=None, y=None, **kw):
    det = create(method, **{**TINY, **kw})
    return det.fit(d["x"] if x is None else x, d["outliers"] if det.requires.outliers else None,
                   labels=d["y"] if y is None else y, validation=d["val"], validation_labels=d["val_y"], upstream=upstream)


@pytest.fixture(scope="module")
def clf(data):
    """One trained classifier, shared by every post hoc detector (``upstream=clf``)."""
    return _fit("msp", data)


def _images(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32) / 255)


def _taps(net: torch.nn.Module, fitted: dict, memory, x: torch.Tensor, dropout: bool = False,
          precision: str = "float32") -> dict[str, torch.Tensor]:
    """The network's taps on images ``x`` in [0, 1], normalised here with the training images'
    per-channel mean and std, computed in float32 (or under bfloat16 autocast) and returned as
    float32; evaluation mode (dropout kept on when asked)."""
    net.eval()
    for m in net.modules():
        if dropout and isinstance(m, torch.nn.Dropout):
            m.train()
    mean = torch.tensor(fitted["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(fitted["std"], dtype=torch.float32).view(1, -1, 1, 1)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            return {k: v.float() for k, v in net.taps(((x - mean) / std).contiguous(memory_format=memory)).items()}
    finally:
        net.eval()


def _clf_taps(det, x: torch.Tensor, precision: str = "float32") -> dict[str, torch.Tensor]:
    up = det.upstream
    return _taps(up.net, up.fitted, up.memory, x, precision=precision)


def _logits(det, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _clf_taps(det, _images(images))["logits"].double().numpy()


def _np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def _pooled(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=(2, 3)) if t.dim() == 4 else t


# -- msp, energy, max-logit ------------------------------------------------------------------------
@pytest.mark.parametrize("method, temperature", [("msp", 1.0), ("msp", 3.0), ("energy", 1.0), ("energy", 2.5),
                                                 ("max-logit", None)])
def test_logit_scores(data, clf, method, temperature) -> None:
    """msp: -max_k softmax_k(f(x)/T); energy: -T log sum_k exp(f_k(x)/T); max-logit: -max_k f_k(x)."""
    kw = {} if temperature is None else {"temperature": temperature}
    det = _fit(method, data, upstream=clf, **kw)
    z = _logits(det, data["eval"])
    if method == "msp":
        ref = -_np_softmax(z / temperature).max(axis=1)
    elif method == "energy":
        ref = -temperature * logsumexp(z / temperature, axis=1)
    else:
        ref = -z.max(axis=1)
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out["logits"], z, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(out["score"], ref, rtol=RTOL, atol=0)


# -- odin -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature, eps, precision", [(1000.0, 0.0014, "float32"), (10.0, 0.05, "float32"),
                                                        (10.0, 0.05, "bfloat16")])
def test_odin(data, clf, temperature, eps, precision) -> None:
    """x~ = x - eps sign(-grad_x log S(x; T)), eps in pixel units of images in [0, 1] (calData.py
    divides the sign gradient by the channel std in normalised space), no clipping, the gradient
    in float32 whatever the scoring precision; s = -max_k softmax_k(f(x~)/T), f in the scoring
    precision (bfloat16: the same autocast forward pass here)."""
    det = _fit("odin", data, upstream=clf, temperature=temperature, eps=eps, precision=precision)
    x = _images(data["eval"]).requires_grad_(True)
    log_s = torch.log_softmax(_clf_taps(det, x)["logits"] / temperature, dim=1).max(dim=1).values
    (grad,) = torch.autograd.grad(log_s.sum(), x)
    assert grad.dtype == torch.float32
    x_t = (x - eps * torch.sign(-grad)).detach()
    with torch.no_grad():
        z_t = _clf_taps(det, x_t, precision)["logits"].double().numpy()
        z = _clf_taps(det, _images(data["eval"]), precision)["logits"].double().numpy()
    ref = -_np_softmax(z_t / temperature).max(axis=1)
    plain = -_np_softmax(z / temperature).max(axis=1)  # S(x; T), no step
    got = det.score(data["eval"])
    # the step's effect is small beside S itself at T = 1000: compare it on its own too, so a step of
    # the wrong size cannot hide in the tolerance (1e-3: the effect is a difference of two scores)
    np.testing.assert_allclose(got - plain, ref - plain, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)


# -- mahalanobis ------------------------------------------------------------------------------------
def _gaussians(feats: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means of the classes present (in the order of ``np.unique``) and the pseudo-inverse of the
    tied covariance (1/N) sum_c sum_{x in c} (f - mu_c)(f - mu_c)^T."""
    present = np.unique(labels)
    means = np.stack([feats[labels == c].mean(axis=0) for c in present])
    cov = np.zeros((feats.shape[1], feats.shape[1]))
    for i, c in enumerate(present):
        d = feats[labels == c] - means[i]
        cov += d.T @ d
    return means, np.linalg.pinv(cov / len(feats), hermitian=True)


def _maha_fit(det, x: np.ndarray, y: np.ndarray, layers: list[str],
              precision: str = "float32") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with torch.no_grad():
        taps = _clf_taps(det, _images(x), precision)
    return {k: _gaussians(_pooled(taps[k]).double().numpy(), y) for k in layers}


def _maha_distances(det, images: np.ndarray, gaussians, eps: float, precision: str = "float32") -> np.ndarray:
    """(N, L) M_l(x~_l) = min_c (f_l(x~_l) - mu_c)^T Sigma^+ (f_l(x~_l) - mu_c), with
    x~_l = x - eps sign(grad_x M_l(x)) (pixel units, gradient of the float32 network, no
    clipping); f_l(x~_l) in the scoring ``precision``."""
    def m(x: torch.Tensor, layer: str, prec_: str) -> torch.Tensor:
        means, prec = (torch.from_numpy(a) for a in gaussians[layer])
        diff = _pooled(_clf_taps(det, x, prec_)[layer]).double()[:, None, :] - means[None]
        return torch.einsum("nkd,de,nke->nk", diff, prec, diff).min(dim=1).values

    cols = []
    for layer in gaussians:
        x = _images(images)
        if eps > 0:
            xg = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(m(xg, layer, "float32").sum(), xg)
            assert grad.dtype == torch.float32
            x = (x - eps * torch.sign(grad)).detach()
        with torch.no_grad():
            cols.append(m(x, layer, precision).numpy())
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("combine, eps, precision", [("sum", 0.0, "float32"), ("last", 0.0, "float32"),
                                                    ("sum", 0.01, "float32"), ("last", 0.02, "float32"),
                                                    ("sum", 0.01, "bfloat16")])
def test_mahalanobis(data, clf, combine, eps, precision) -> None:
    """Tied-covariance class Gaussians of each layer's pooled features; M_l the smallest squared
    Mahalanobis distance over the classes; "sum": each M_l standardised by its mean and
    (population) standard deviation on the validation images, summed; "last": the penultimate
    layer alone (standardised the same way). Features in the scoring precision (bfloat16: the same
    autocast forward pass here), the pre-processing gradient in float32."""
    det = _fit("mahalanobis", data, upstream=clf, combine=combine, eps=eps, precision=precision)
    layers = ["z3"] if combine == "last" else ["z1", "z2", "z3"]  # LeNet: every tap before the logits
    assert det.fitted["layers"] == layers
    g = _maha_fit(det, data["x"], data["y"], layers, precision)
    val = _maha_distances(det, data["val"], g, eps, precision)
    ref = _maha_distances(det, data["eval"], g, eps, precision)
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out["layer_scores"], ref, rtol=RTOL, atol=0)
    np.testing.assert_allclose(out["score"], ((ref - val.mean(axis=0)) / val.std(axis=0)).sum(axis=1), rtol=RTOL, atol=1e-6)


def test_mahalanobis_minimum_is_over_classes_with_images(data, clf) -> None:
    """The paper's minimum runs over the class Gaussians estimated from the fit sample: a class of the
    classifier without a single fit image has no Gaussian, and fitting refuses such a sample rather
    than let a made-up mean compete in the minimum."""
    keep = data["y"] != 3
    with pytest.raises(InputError, match="no image"):
        _fit("mahalanobis", data, upstream=clf, x=data["x"][keep], y=data["y"][keep])


@pytest.mark.parametrize("eps_grid", [[0.0], [0.02]])
def test_mahalanobis_tuned(data, clf, eps_grid) -> None:
    """s = w . z + b, z_l = (M_l(x~_l) - m_l) / s_l standardised on the tuning in-distribution
    images (here all the validation images), (w, b) a balanced logistic regression of those images
    (0) against the outliers (1). The regression is re-fitted here with scikit-learn and compared
    with the detector's; the score uses the detector's (w, b) and eps."""
    from sklearn.linear_model import LogisticRegression

    det = _fit("mahalanobis-tuned", data, upstream=clf, eps_grid=eps_grid, tune_samples=10_000)
    eps = det.fitted["eps"]
    assert eps in eps_grid
    layers = ["z1", "z2", "z3"]
    g = _maha_fit(det, data["x"], data["y"], layers)
    val, out_d = _maha_distances(det, data["val"], g, eps), _maha_distances(det, data["outliers"], g, eps)
    m, s = val.mean(axis=0), val.std(axis=0)
    z = (np.r_[val, out_d] - m) / s
    lr = LogisticRegression(class_weight="balanced", max_iter=1000).fit(z, np.r_[np.zeros(len(val)), np.ones(len(out_d))])
    w, b = det.coef.numpy(), float(det.intercept.numpy()[0])
    # the same regression on the same standardised distances; 1e-4: lbfgs's stopping rule
    np.testing.assert_allclose(w, lr.coef_[0], rtol=1e-4, atol=1e-6)
    assert b == pytest.approx(float(lr.intercept_[0]), rel=1e-4, abs=1e-6)
    ref = _maha_distances(det, data["eval"], g, eps)
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out["layer_scores"], ref, rtol=RTOL, atol=0)
    np.testing.assert_allclose(out["score"], ((ref - m) / s) @ w + b, rtol=RTOL, atol=1e-6)


# -- gram -------------------------------------------------------------------------------------------
def _gram_values(t: torch.Tensor, powers: int) -> np.ndarray:
    """(N, P, C): row sums of the p-th order Gram matrix F^p (F^p)^T, then the sign-keeping p-th
    root (the sum before the root, as Sastry & Oore's code)."""
    f = t.double().numpy().reshape(t.shape[0], t.shape[1], -1)
    out = []
    for p in range(1, powers + 1):
        fp = f**p
        gram = fp @ fp.transpose(0, 2, 1)  # (N, C, C)
        s = gram.sum(axis=2)
        out.append(np.sign(s) * np.abs(s) ** (1.0 / p))
    return np.stack(out, axis=1)


def test_gram(data, clf) -> None:
    """Per predicted class, the range [mn, mx] of each Gram value over the training images f assigns
    to it; delta = (mn - v)/|mn| below, (v - mx)/|mx| above (|.| floored at 1e-6), summed over powers
    and channels per layer; s = sum_l Delta_l / E_val[Delta_l] (E_val over the validation images)."""
    powers = 10
    det = _fit("gram", data, upstream=clf, powers=powers, fit_samples=10_000, val_samples=10_000)
    layers = ["z1", "z2", "z3"]  # the LeNet's spatial taps and its penultimate vector
    assert det.fitted["gram"]["layers"] == layers

    def values(images: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        with torch.no_grad():
            taps = _clf_taps(det, _images(images))
        return {k: _gram_values(taps[k], powers) for k in layers}, taps["logits"].numpy().argmax(axis=1)

    train_v, pred = values(data["x"])
    # a class f never predicts on the training images takes the range over all of them
    groups = {k: [v[pred == c] if (pred == c).any() else v for c in ID_CLASSES] for k, v in train_v.items()}
    mins = {k: np.stack([g.min(axis=0) for g in per_class]) for k, per_class in groups.items()}
    maxs = {k: np.stack([g.max(axis=0) for g in per_class]) for k, per_class in groups.items()}

    def deviations(images: np.ndarray) -> np.ndarray:
        v, pred = values(images)
        cols = []
        for k in layers:
            mn, mx = mins[k][pred], maxs[k][pred]
            below = np.where(v[k] < mn, (mn - v[k]) / np.maximum(np.abs(mn), 1e-6), 0.0)
            above = np.where(v[k] > mx, (v[k] - mx) / np.maximum(np.abs(mx), 1e-6), 0.0)
            cols.append((below + above).sum(axis=(1, 2)))
        return np.stack(cols, axis=1)

    e_val = deviations(data["val"]).mean(axis=0)
    assert (e_val > 0).all()
    ref = (deviations(data["eval"]) / e_val).sum(axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), ref, rtol=RTOL, atol=1e-9)


# -- ncd --------------------------------------------------------------------------------------------
def test_ncd(data, clf) -> None:
    """Channels quantised with the layer's training range, NCD(a, b) = (C(ab) - min(C(a), C(b))) /
    max(C(a), C(b)) with C the zlib level-9 length, per class the vector [GAP_k, NCD(x_k, ref_{c,k})]
    (ref: the quantised class-mean map), tied Gaussians on the own-class vectors, s = sum_l min_c of
    the squared Mahalanobis distance (pseudo-inverse, eigenvalues below 1e-10 of the largest cut)."""
    det = _fit("ncd", data, upstream=clf, fit_samples=10_000)
    layers = ["z1", "z2"]  # the LeNet's spatial taps
    assert det.fitted["ncd"]["layers"] == layers

    def maps(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            taps = _clf_taps(det, _images(images))
        return {k: taps[k].double().numpy().reshape(len(images), taps[k].shape[1], -1) for k in layers}

    def c(b: bytes) -> int:
        return len(zlib.compress(b, 9))

    def ncd(a: bytes, b: bytes) -> float:
        return (c(a + b) - min(c(a), c(b))) / max(c(a), c(b))

    train, y = maps(data["x"]), data["y"]
    ranges = {k: (m.min(), m.max()) for k, m in train.items()}

    def quantised(m: np.ndarray, k: str) -> np.ndarray:
        lo, hi = ranges[k]
        return np.clip(np.rint((m - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)

    refs = {k: quantised(np.stack([m[y == cl].mean(axis=0) for cl in ID_CLASSES]), k) for k, m in train.items()}

    def vectors(m: np.ndarray, k: str, classes: list[int]) -> np.ndarray:
        q = quantised(m, k)
        gap = m.mean(axis=2)
        out = np.empty((len(m), len(classes), 2 * m.shape[1]))
        for i in range(len(m)):
            for j, cl in enumerate(classes):
                d = [ncd(q[i, ch].tobytes(), refs[k][cl, ch].tobytes()) for ch in range(m.shape[1])]
                out[i, j] = np.r_[gap[i], d]
        return out

    ev = maps(data["eval"])
    ref = np.zeros(len(data["eval"]))
    for k in layers:
        own = np.stack([vectors(train[k][i:i + 1], k, [y[i]])[0, 0] for i in range(len(y))])
        means = np.stack([own[y == cl].mean(axis=0) for cl in ID_CLASSES])
        centred = own - means[y]
        prec = np.linalg.pinv(centred.T @ centred / len(own), rcond=1e-10, hermitian=True)
        d = vectors(ev[k], k, ID_CLASSES) - means[None]
        ref += np.einsum("nkd,de,nke->nk", d, prec, d).min(axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), ref, rtol=RTOL, atol=1e-9)


# -- prior-net --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prior_net(data):
    return _fit("prior-net", data, epochs=2)


@pytest.mark.parametrize("score", ["mi", "precision"])
def test_prior_net(data, prior_net, score) -> None:
    """alpha = exp(z) (z clamped to [-20, 20]), mu = alpha / alpha_0; "mi": the mutual information
    I = H[mu] - E_Dir[H[p]] = -sum_k mu_k (ln mu_k - psi(alpha_k + 1) + psi(alpha_0 + 1)) (Malinin &
    Gales, eq. 14); "precision": -ln alpha_0."""
    det = prior_net
    with torch.no_grad():
        z = _taps(det.net, det.fitted, det.memory, _images(data["eval"]))["logits"].double().numpy()
    alpha = np.exp(np.clip(z, -20, 20))
    a0 = alpha.sum(axis=1)
    mu = alpha / a0[:, None]
    if score == "mi":
        expected_entropy = -np.sum(mu * (digamma(alpha + 1) - digamma(a0 + 1)[:, None]), axis=1)
        ref = _entropy(mu) - expected_entropy
    else:
        ref = -np.log(a0)
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out[score], ref, rtol=RTOL, atol=1e-9)
    np.testing.assert_array_equal(out["score"], out[det.config["score"]])


# -- generalized-odin -------------------------------------------------------------------------------
@pytest.mark.parametrize("h, score, perturb", [("cosine", "h", False), ("inner", "g", True), ("euclidean", "h", True)])
def test_generalized_odin(data, h, score, perturb) -> None:
    """f_i = h_i / g with g = sigmoid(BN(w_g . z + b_g)) (BN with its running statistics) and h_i the
    cosine w_i.z/(|w_i||z|), the inner product w_i.z + b_i or -|z - w_i|^2; s = -max_i h_i or -g at
    x~ = x - eps sign(-grad_x S(x)), eps (pixel units) the grid value with the largest mean S(x~) on
    the validation images (ties: the smaller)."""
    grid = [0.0, 0.0025, 0.01, 0.04]
    det = _fit("generalized-odin", data, h=h, score=score, perturb=perturb, eps_grid=grid)
    head = det.head

    def parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zt = _taps(det.net, det.fitted, det.memory, x)["z3"].flatten(1)
        w = head.h.weight
        if h == "cosine":
            hh = (zt @ w.T) / (zt.norm(dim=1, keepdim=True) * w.norm(dim=1)[None])
        elif h == "inner":
            hh = zt @ w.T + head.h.bias
        else:
            hh = -((zt[:, None, :] - w[None]) ** 2).sum(dim=2)
        bn = head.g_bn
        u = zt @ head.g.weight.T + head.g.bias
        u = (u - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        return hh, torch.sigmoid(u).squeeze(1)

    def confidence(x: torch.Tensor) -> torch.Tensor:
        hh, gg = parts(x)
        return hh.max(dim=1).values if score == "h" else gg

    def perturbed(images: np.ndarray, eps: float) -> torch.Tensor:
        x = _images(images)
        if eps == 0:
            return x
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(confidence(xg).sum(), xg)
        return (x - eps * torch.sign(-grad)).detach()

    if perturb:
        means = []
        for e in grid:
            x_t = perturbed(data["val"], e)
            with torch.no_grad():
                means.append(float(confidence(x_t).double().mean()))
        eps = grid[int(np.argmax(means))]
        assert det.fitted["eps"] == eps
    else:
        eps = 0.0
    x_t = perturbed(data["eval"], eps)
    with torch.no_grad():
        ref = -confidence(x_t).double().numpy()
        hh, gg = parts(_images(data["eval"]))
        f = (hh / gg[:, None]).double().numpy()
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out["logits"], f, rtol=RTOL, atol=1e-6)
    # atol 1e-6: h (a cosine, a dot product, a squared distance) is a float32 sum of products of order
    # one, whose rounding (~1e-7 absolute) is a large relative error where h is near 0
    np.testing.assert_allclose(out["score"], ref, rtol=RTOL, atol=1e-6)


# -- dgc --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance", ["identity", "diagonal"])
def test_dgc(data, covariance) -> None:
    """l_c = log N(z; mu_c, Sigma) + log(1/K) (SciPy's Gaussian density), s = min_c (z - mu_c)^T
    Sigma^-1 (z - mu_c), z the output of the network's last linear layer."""
    det = _fit("dgc", data, covariance=covariance)
    with torch.no_grad():
        z = _taps(det.net, det.fitted, det.memory, _images(data["eval"]))["logits"].double().numpy()
    means = det.head.means.detach().double().numpy()
    var = np.ones(z.shape[1]) if covariance == "identity" else np.exp(det.head.log_var.detach().double().numpy())
    d = np.stack([(((z - m) ** 2) / var).sum(axis=1) for m in means], axis=1)
    logp = np.stack([multivariate_normal(mean=m, cov=np.diag(var)).logpdf(z) for m in means], axis=1)
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out["score"], d.min(axis=1), rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(out["logits"], logp + np.log(1 / len(means)), rtol=RTOL, atol=1e-6)


# -- layerwise-uncertainty --------------------------------------------------------------------------
@pytest.mark.parametrize("combine", ["last", "sum", "max"])
def test_layerwise_uncertainty(data, combine) -> None:
    """u_l = mean over the elements of the log-variance branch v_l(z_l) (clamped to [-15, 15]), H the
    softmax entropy; each standardised with its mean and (population) std over the validation
    images; "last": u of the penultimate layer + H, "sum": all u_l + H, "max": the largest."""
    det = _fit("layerwise-uncertainty", data, combine=combine)
    layers = ["z1", "z2", "z3"]

    def terms(images: np.ndarray) -> np.ndarray:
        det._train_mode(False)
        with torch.no_grad():
            taps = _taps(det.net, det.fitted, det.memory, _images(images))
            u = [det.head[k](taps[k]).clamp(-15, 15).double().flatten(1).mean(dim=1).numpy() for k in layers]
            z = taps["logits"].double().numpy()
        return np.stack([*u, _entropy(_np_softmax(z))], axis=1)

    val = terms(data["val"])
    t = (terms(data["eval"]) - val.mean(axis=0)) / val.std(axis=0)
    cols = [2, 3] if combine == "last" else [0, 1, 2, 3]
    ref = t[:, cols].max(axis=1) if combine == "max" else t[:, cols].sum(axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), ref, rtol=RTOL, atol=1e-6)


# -- ensemble and mc-dropout ------------------------------------------------------------------------
def _uncertainties(probs: np.ndarray) -> dict[str, np.ndarray]:
    """(I, N, K) member / pass distributions: entropy of the mean, mutual information H[p] - mean_i
    H[p_i], Freeman's variation ratio 1 - (votes of the modal class) / I, -max_k p_k of the mean."""
    mean = probs.mean(axis=0)
    votes = np.stack([np.bincount(col, minlength=probs.shape[2]) for col in probs.argmax(axis=2).T])
    return {"entropy": _entropy(mean), "mi": _entropy(mean) - _entropy(probs).mean(axis=0),
            "variation-ratio": 1 - votes.max(axis=1) / probs.shape[0], "max-prob": -mean.max(axis=1)}


SCORES = ["mi", "entropy", "variation-ratio", "max-prob"]


@pytest.fixture(scope="module")
def ensemble(data):
    return _fit("ensemble", data, members=3)


@pytest.mark.parametrize("score", SCORES)
def test_ensemble(data, ensemble, score) -> None:
    members = ensemble.upstream.members
    assert len(members) == 3
    with torch.no_grad():
        z = np.stack([_taps(m.net, m.fitted, m.memory, _images(data["eval"]))["logits"].double().numpy() for m in members])
    probs = softmax(z, axis=2)
    assert _uncertainties(probs)["mi"].max() > 1e-3  # the members disagree somewhere
    out = ensemble.outputs(data["eval"])
    np.testing.assert_allclose(out[score], _uncertainties(probs)[score], rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(np.exp(out["logits"]), probs.mean(axis=0), rtol=RTOL, atol=1e-7)


@pytest.fixture(scope="module")
def mc_dropout(data):
    return _fit("mc-dropout", data, dropout=0.5, passes=12)


@pytest.mark.parametrize("score", SCORES)
def test_mc_dropout(data, mc_dropout, score) -> None:
    """T passes with the dropout layers stochastic, the masks drawn from torch's generator seeded with
    ``seed`` (the detector's documented draw; every image scored in one batch here)."""
    det = mc_dropout
    x = _images(data["eval"])
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(det.config["seed"]))
        z = np.stack([_clf_taps_dropout(det, x) for _ in range(int(det.config["passes"]))])
    probs = softmax(z, axis=2)
    assert (probs.std(axis=0) > 0).any()  # the passes differ
    out = det.outputs(data["eval"])
    np.testing.assert_allclose(out[score], _uncertainties(probs)[score], rtol=RTOL, atol=1e-9)


def _clf_taps_dropout(det, x: torch.Tensor) -> np.ndarray:
    up = det.upstream
    return _taps(up.net, up.fitted, up.memory, x, dropout=True)["logits"].double().numpy()


# -- temperature scaling and ECE --------------------------------------------------------------------
def test_temperature_scaling(data, clf) -> None:
    """T minimises the mean NLL of the validation labels under softmax(z / T) (found here by Brent's
    method on log T); s = -max_k softmax_k(z / T), the logits returned are z / T."""
    det = _fit("temperature", data, upstream=clf)
    zv, yv = _logits(det, data["val"]), data["val_y"]

    def nll(log_t: float) -> float:
        zt = zv / math.exp(log_t)
        return float(np.mean(logsumexp(zt, axis=1) - zt[np.arange(len(yv)), yv]))

    best = minimize_scalar(nll, bracket=(-1.0, 1.0), tol=1e-12)
    t, fitted = math.exp(best.x), det.fitted["temperature"]
    # both are numerical minimisers of a flat function: the detector's L-BFGS stops where the NLL is
    # within ~1e-9 of its minimum, which leaves T a few 1e-5 (relative) from the exact minimiser
    assert nll(math.log(fitted)) - best.fun < 1e-8
    assert fitted == pytest.approx(t, rel=1e-4)
    z = _logits(det, data["eval"])
    out = det.outputs(data["eval"])  # the score at the detector's T (checked above)
    np.testing.assert_allclose(out["score"], -_np_softmax(z / fitted).max(axis=1), rtol=RTOL, atol=0)
    np.testing.assert_allclose(out["logits"], z / fitted, rtol=RTOL, atol=1e-6)


def _ece(probs: np.ndarray, labels: np.ndarray, bins: int, confidence: str) -> float:
    """sum_m |B_m|/N |acc(B_m) - conf(B_m)|, bin m holding (m-1)/M < q <= m/M (q = 0 in the first),
    conf the mean confidence of the bin (Guo et al.) or its centre (m - 1/2)/M."""
    q, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    total = 0.0
    for m in range(1, bins + 1):
        inside = ((m - 1) / bins < q) & (q <= m / bins)
        if m == 1:
            inside |= q == 0
        if inside.any():
            conf = q[inside].mean() if confidence == "mean" else (m - 0.5) / bins
            total += inside.sum() / len(q) * abs(correct[inside].mean() - conf)
    return total


@pytest.mark.parametrize("source", ["classifier", "edges"])
@pytest.mark.parametrize("confidence", ["mean", "centre"])
def test_ece(data, clf, source, confidence) -> None:
    """Both forms of the ECE, on the classifier's softmax outputs and on distributions whose
    confidence sits exactly on the bin edges m/M (an edge belongs to the bin below it)."""
    if source == "classifier":
        probs, labels, bins = _np_softmax(_logits(clf, data["val"])), data["val_y"], 15
    else:
        rng = np.random.default_rng(0)
        bins, k = 10, 4
        q = np.repeat([m / bins for m in range(3, bins + 1)], 7)  # confidences >= 1/K, on the edges
        probs = np.zeros((len(q), k))
        probs[:, 0] = q
        probs[:, 1:] = ((1 - q) / (k - 1))[:, None]
        labels = rng.integers(0, k, len(q))
    got = expected_calibration_error(probs, labels, bins=bins, confidence=confidence)
    assert got == pytest.approx(_ece(probs, labels, bins, confidence), rel=1e-12, abs=1e-15)


# -- AUROC, AUPR-in, AUPR-out, FPR95 -----------------------------------------------------------------
def _metric_scores(n_in: int, n_out: int, ties: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s_in, s_out = rng.normal(0.0, 1.0, n_in), rng.normal(1.0, 1.0, n_out)
    if ties:  # a few distinct values shared by both sides
        s_in, s_out = np.round(s_in * 2) / 2, np.round(s_out * 2) / 2
    return s_in, s_out


def _auroc(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """P(s_out > s_in) + 1/2 P(s_out = s_in) over all pairs (OOD positive)."""
    diff = s_out[:, None] - s_in[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision, higher score = positive: sum over the distinct thresholds t (descending)
    of (R_n - R_{n-1}) P_n with R, P the recall and precision of {score >= t} (scikit-learn's
    definition, no interpolation)."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(np.r_[pos, neg])[::-1]:
        tp, fp = (pos >= t).sum(), (neg >= t).sum()
        recall = tp / len(pos)
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return ap


def _fpr95(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """The k-th smallest in-distribution score is the smallest threshold accepting (score <= it) at
    least 95 % of them, k = ceil(0.95 n) in integers; the fraction of OOD scores <= it."""
    n = len(s_in)
    k = (95 * n + 99) // 100
    t = np.sort(s_in)[k - 1]
    assert (s_in <= t).sum() >= 0.95 * n
    return float((s_out <= t).mean())


CASES = [(20, 30, False), (20, 20, True), (100, 70, False), (100, 100, True), (1000, 500, False), (1000, 800, True),
         (37, 23, True)]


@pytest.mark.parametrize("metric", ["auroc", "aupr_in", "aupr_out", "fpr95"])
@pytest.mark.parametrize("n_in, n_out, ties", CASES)
def test_ood_metrics(metric, n_in, n_out, ties) -> None:
    """Scores higher = more OOD; AUROC with OOD positive; AUPR-in with in-distribution positive
    (scored by -s); AUPR-out with OOD positive; FPR95 by counting."""
    s_in, s_out = _metric_scores(n_in, n_out, ties, seed=n_in + n_out)
    scores, is_ood = np.r_[s_in, s_out], np.r_[np.zeros(n_in), np.ones(n_out)]
    ref = {"auroc": lambda: _auroc(s_in, s_out), "aupr_in": lambda: _average_precision(-s_in, -s_out),
           "aupr_out": lambda: _average_precision(s_out, s_in), "fpr95": lambda: _fpr95(s_in, s_out)}[metric]()
    fn = {"auroc": auroc, "aupr_in": aupr_in, "aupr_out": aupr_out, "fpr95": fpr_at_tpr}[metric]
    assert fn(scores, is_ood) == pytest.approx(ref, rel=1e-12, abs=1e-15)
