"""prior-net (Malinin & Gales 2018) and generalized-odin (Hsu et al. 2020): the Dirichlet KL and
mutual information against independent computations, the precision score's direction and the
outputs; G-ODIN's decomposed confidence against NumPy, its input perturbation's sign and the eps
chosen from the grid (saved with the detector)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import digamma, gammaln, xlogy
from scipy.stats import dirichlet

from oodscope.data import load
from oodscope.detectors import create, load as load_model
from oodscope.detectors.generalized_odin import DeConfHead
from oodscope.detectors.prior_net import dirichlet_kl, mutual_information, precision_score
from oodscope.errors import InputError

torch.set_num_threads(1)
TINY = {"widths": [8, 16], "hidden": 32, "batch_size": 64, "progress": False}


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    train, test = load("digits", "train"), load("digits", "test")
    keep, keep_t = np.isin(train.labels, [0, 1, 2]), np.isin(test.labels, [0, 1, 2])
    return {"x": train.images[keep], "y": train.labels[keep], "test": test.images[keep_t],
            "test_y": test.labels[keep_t], "outliers": train.images[train.labels == 7][:32]}


# -- prior-net: the Dirichlet quantities -----------------------------------------------------
def kl_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """KL(Dir(a) || Dir(b)) = E_a[log Dir(p|a) - log Dir(p|b)], written out term by term."""
    log_norm_a = gammaln(a.sum()) - gammaln(a).sum()
    log_norm_b = gammaln(b.sum()) - gammaln(b).sum()
    e_log_p = digamma(a) - digamma(a.sum())  # E_a[log p_k]
    return float(log_norm_a - log_norm_b + ((a - 1) * e_log_p).sum() - ((b - 1) * e_log_p).sum())


@pytest.mark.parametrize("a, b", [([1.0, 101.0, 1.0], [2.0, 30.0, 0.5]), ([1.0, 1.0, 1.0], [0.3, 4.0, 7.0]),
                                  ([5.0, 2.0], [5.0, 2.0]), ([1.0, 1.0, 1.0, 1.0], [50.0, 0.01, 3.0, 1.0])])
def test_dirichlet_kl_matches_scipy(a: list[float], b: list[float]) -> None:
    a_, b_ = np.array(a), np.array(b)
    got = dirichlet_kl(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), [kl_numpy(a_, b_)], rtol=1e-9, atol=1e-9)
    assert got.item() >= -1e-12 and (a != b or abs(got.item()) < 1e-9)


def test_dirichlet_kl_matches_monte_carlo() -> None:
    a, b = np.array([2.0, 3.0, 5.0]), np.array([1.0, 4.0, 2.0])
    p = np.random.default_rng(0).dirichlet(a, size=200_000)
    mc = float(np.mean(dirichlet.logpdf(p.T, a) - dirichlet.logpdf(p.T, b)))
    got = dirichlet_kl(torch.tensor(a[None]), torch.tensor(b[None])).item()
    assert got == pytest.approx(mc, abs=0.01)


def mi_numpy(alpha: np.ndarray) -> float:
    """Entropy of the mean minus the expected entropy, E_Dir[H(p)] = -sum_k mu_k (psi(alpha_k + 1) - psi(alpha_0 + 1))."""
    mu = alpha / alpha.sum()
    expected_entropy = -(mu * (digamma(alpha + 1) - digamma(alpha.sum() + 1))).sum()
    return float(-xlogy(mu, mu).sum() - expected_entropy)


@pytest.mark.parametrize("alpha", [[1.0, 1.0, 1.0], [2.0, 3.0, 5.0], [100.0, 1.0, 1.0], [0.01, 0.01, 0.01],
                                   [1e4, 1e4, 1e4], [0.2, 7.0], [3.0, 0.5, 0.5, 9.0, 1.0]])
def test_mutual_information_against_numpy(alpha: list[float]) -> None:
    a = np.array(alpha)
    got = mutual_information(torch.tensor(np.log(a)[None])).item()
    assert got == pytest.approx(mi_numpy(a), abs=1e-9)


def test_mutual_information_on_hand_chosen_dirichlets() -> None:
    mi = lambda a: mutual_information(torch.tensor(np.log(a)[None])).item()  # noqa: E731
    # flat Dir(1, 1, 1): log 3 - (psi(4) - psi(2)) = log 3 - (1/2 + 1/3)
    assert mi(np.ones(3)) == pytest.approx(np.log(3) - 5 / 6, abs=1e-12)
    assert mi(np.full(3, 1e4)) == pytest.approx(2 / (2 * 3e4), rel=1e-3)  # sharp: (K - 1) / (2 alpha_0)
    assert mi(np.full(3, 1e-3)) == pytest.approx(np.log(3), abs=0.01)  # flat, low precision: about H(mu)
    assert mi(np.full(3, 1e-3)) > mi(np.ones(3)) > mi(np.full(3, 10.0)) > mi(np.full(3, 1e4))


def test_expected_entropy_of_the_mutual_information_by_monte_carlo() -> None:
    a = np.array([2.0, 0.7, 4.0])
    p = np.random.default_rng(1).dirichlet(a, size=200_000)
    mu = a / a.sum()
    mc = -xlogy(mu, mu).sum() - np.mean(-xlogy(p, p).sum(axis=1))
    assert mutual_information(torch.tensor(np.log(a)[None])).item() == pytest.approx(mc, abs=0.005)


def test_precision_score_is_minus_log_alpha_0_and_higher_for_flatter() -> None:
    alphas = np.array([[100.0, 1.0, 1.0], [5.0, 5.0, 5.0], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1]])
    s = precision_score(torch.tensor(np.log(alphas))).numpy()
    np.testing.assert_allclose(s, -np.log(alphas.sum(axis=1)), rtol=1e-12)
    assert (np.diff(s) > 0).all()  # lower precision alpha_0: more OOD


def test_kl_loss_targets() -> None:
    det = create("prior-net", target_precision=100.0, oe_weight=1.0)
    labels = torch.tensor([0, 2])
    target = torch.ones(2, 3)
    target[0, 0] += 100
    target[1, 2] += 100
    exact = {"logits": target.log()}
    flat = {"logits": torch.zeros(4, 3)}
    assert det.loss(exact, labels, flat).item() == pytest.approx(0.0, abs=1e-3)  # both targets met
    other = {"logits": torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 3.0]])}
    expected = np.mean([kl_numpy(target[i].double().numpy(), np.exp(other["logits"][i].double().numpy())) for i in range(2)])
    assert det.loss(other, labels, None).item() == pytest.approx(expected, rel=1e-5)
    sharp = {"logits": torch.full((4, 3), 3.0)}
    det2 = create("prior-net", oe_weight=2.0)
    assert det2.loss(exact, labels, sharp).item() == pytest.approx(2 * kl_numpy(np.ones(3), np.full(3, np.exp(3.0))), rel=1e-5)


def test_prior_net_outputs_and_trained_precision(digits) -> None:
    # from alpha = exp(0) = 1 at the start, the precision takes a few hundred steps to grow
    det = create("prior-net", **TINY, epochs=60).fit(digits["x"], digits["outliers"], labels=digits["y"])
    out = det.outputs(digits["test"])
    assert set(out) == {"score", "logits", "precision", "mi"}
    np.testing.assert_array_equal(out["score"], out["mi"])
    z = torch.from_numpy(out["logits"])
    np.testing.assert_array_equal(out["precision"], precision_score(z).numpy())
    np.testing.assert_array_equal(out["mi"], mutual_information(z).numpy())
    assert (out["logits"].argmax(axis=1) == digits["test_y"]).mean() > 0.9
    # the test images of the classes get a high precision alpha_0 (a low score), noise a low one
    noise = np.random.default_rng(0).integers(0, 256, (60, 1, 8, 8), dtype=np.uint8)
    noisy = det.outputs(noise)
    assert np.median(np.exp(-out["precision"])) > 20 > 10 > np.median(np.exp(-noisy["precision"]))
    assert np.median(noisy["mi"]) > np.median(out["mi"])
    # score="precision" gives the outputs' precision array (the score does not change training)
    det.config["score"] = "precision"
    out_p = det.outputs(digits["test"])
    np.testing.assert_array_equal(out_p["score"], out_p["precision"])
    np.testing.assert_array_equal(out_p["precision"], out["precision"])
    np.testing.assert_array_equal(det.score(digits["test"]), out["precision"])


def test_prior_net_precision_loss_trains(digits) -> None:
    det = create("prior-net", **TINY, epochs=15, loss="precision").fit(digits["x"], digits["outliers"], labels=digits["y"])
    out, o = det.outputs(digits["test"]), det.outputs(digits["outliers"])
    assert np.isfinite(out["score"]).all() and (out["logits"].argmax(axis=1) == digits["test_y"]).mean() > 0.9
    assert np.median(o["precision"]) > np.median(out["precision"])  # the known outliers: low precision


def test_prior_net_settings_are_checked() -> None:
    with pytest.raises(InputError, match="lambda_in"):
        create("prior-net", loss="precision", lambda_in=0.1, lambda_out=0.2)
    with pytest.raises(InputError, match="target_precision"):
        create("prior-net", target_precision=0.0)
    with pytest.raises(InputError, match="loss"):
        create("prior-net", loss="reverse-kl")


# -- generalized-odin -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cosine", "inner", "euclidean"])
def test_deconf_head_against_numpy(kind: str) -> None:
    torch.manual_seed(0)
    head = DeConfHead(6, 4, kind).double()
    with torch.no_grad():
        head.g_bn.running_mean.fill_(0.3)
        head.g_bn.running_var.fill_(2.0)
        head.g_bn.weight.fill_(1.5)
        head.g_bn.bias.fill_(-0.2)
    head.eval()
    z = torch.randn(5, 6, dtype=torch.float64)
    h, g = head(z)
    zn, w = z.numpy(), head.h.weight.detach().numpy()
    if kind == "cosine":
        ref = (zn @ w.T) / np.linalg.norm(zn, axis=1)[:, None] / np.linalg.norm(w, axis=1)[None]
    elif kind == "inner":
        ref = zn @ w.T + head.h.bias.detach().numpy()
    else:
        ref = -np.array([[np.sum((zi - wi) ** 2) for wi in w] for zi in zn])
    np.testing.assert_allclose(h.detach().numpy(), ref, rtol=1e-10)
    u = zn @ head.g.weight.detach().numpy().T[:, 0] + head.g.bias.item()
    u = (u - 0.3) / np.sqrt(2.0 + head.g_bn.eps) * 1.5 - 0.2
    np.testing.assert_allclose(g.detach().numpy(), 1 / (1 + np.exp(-u)), rtol=1e-10)
    head.train()
    assert head(z[:1])[1].shape == (1,)  # a training batch of one image


@pytest.fixture(scope="module")
def godin(digits):
    return create("generalized-odin", **TINY, epochs=15, amp=False, perturb=True).fit(digits["x"], labels=digits["y"])


def test_godin_decomposition_f_is_h_over_g(godin, digits) -> None:
    x = torch.from_numpy(digits["test"][:20].astype(np.float32) / 255)
    with torch.no_grad():
        taps = godin.taps(x)
        h, g = godin.head(taps[godin.penultimate])
    np.testing.assert_allclose(taps["h"].numpy(), h.numpy(), rtol=1e-6)
    np.testing.assert_allclose(taps["f"].numpy(), (h / g[:, None]).numpy(), rtol=1e-6)
    assert ((g > 0) & (g < 1)).all()
    z, w = taps[godin.penultimate].numpy(), godin.head.h.weight.detach().numpy()
    cos = (z @ w.T) / np.maximum(np.linalg.norm(z, axis=1), 1e-12)[:, None] / np.linalg.norm(w, axis=1)[None]
    np.testing.assert_allclose(taps["h"].numpy(), cos, atol=1e-6)
    out = godin.outputs(digits["test"][:20])
    np.testing.assert_allclose(out["logits"], taps["f"].numpy(), rtol=1e-5)  # logits: f at the unperturbed image
    assert (godin.outputs(digits["test"])["logits"].argmax(axis=1) == digits["test_y"]).mean() > 0.9


def test_godin_perturbation_raises_the_confidence(godin, digits) -> None:
    x = torch.from_numpy(digits["test"].astype(np.float32) / 255)
    sign, taps = godin.ascent(x)
    s0 = godin.confidence(taps)
    with torch.no_grad():
        up = godin.confidence(godin.taps(x + 0.01 * sign))
        down = godin.confidence(godin.taps(x - 0.01 * sign))
    assert (up > s0).float().mean() > 0.9 and (down < s0).float().mean() > 0.9
    assert up.mean() > s0.mean() > down.mean()
    eps = godin.fitted["eps"]
    if eps > 0:  # the scores are those of the perturbed images
        with torch.no_grad():
            stepped = godin.confidence(godin.taps(x + eps * sign))
        np.testing.assert_allclose(godin.score(digits["test"]), -stepped.double().numpy(), rtol=1e-6, atol=1e-7)


def test_godin_eps_is_chosen_from_the_grid_and_saved(digits, tmp_path: Path) -> None:
    grid = [0.0, 0.003, 0.5]
    det = create("generalized-odin", **TINY, epochs=5, eps_grid=grid, perturb=True)
    det.fit(digits["x"], labels=digits["y"], validation=digits["test"], validation_labels=digits["test_y"])
    search = det.fitted["eps_search"]
    assert search["images"] == "validation" and search["n"] == len(digits["test"]) and search["grid"] == grid
    assert det.fitted["eps"] in grid and det.fitted["eps"] == grid[int(np.argmax(search["mean_confidence"]))]
    assert "val_accuracy" in det.fitted
    back = load_model(det.save(tmp_path / "m"))
    assert back.fitted["eps"] == det.fitted["eps"]
    np.testing.assert_array_equal(back.score(digits["test"]), det.score(digits["test"]))
    no_val = create("generalized-odin", **TINY, epochs=5, eps_grid=grid, perturb=True).fit(digits["x"], labels=digits["y"])
    assert no_val.fitted["eps_search"]["images"] == "training"
    assert no_val.fitted["eps_search"]["n"] == min(1000, len(digits["x"]))


def test_godin_without_perturbation_and_the_g_score(digits) -> None:
    kw = dict(TINY, epochs=5)
    plain = create("generalized-odin", **kw, perturb=False).fit(digits["x"], labels=digits["y"])
    assert plain.fitted["eps"] == 0.0 and "eps_search" not in plain.fitted
    x = torch.from_numpy(digits["test"].astype(np.float32) / 255)
    with torch.no_grad():
        taps = plain.taps(x)
    np.testing.assert_allclose(plain.score(digits["test"]), -taps["h"].max(dim=1).values.double().numpy(), rtol=1e-6)
    g_det = create("generalized-odin", **kw, perturb=False, score="g").fit(digits["x"], labels=digits["y"])
    with torch.no_grad():
        taps = g_det.taps(x)
    np.testing.assert_allclose(g_det.score(digits["test"]), -taps["g"].double().numpy(), rtol=1e-6)


def test_godin_settings_and_no_weight_decay_on_h(digits) -> None:
    with pytest.raises(InputError, match="eps_grid"):
        create("generalized-odin", eps_grid=[])
    with pytest.raises(InputError, match="eps_grid"):
        create("generalized-odin", eps_grid=[0.01, -0.1])
    with pytest.raises(InputError, match="'h'"):
        create("generalized-odin", h="cosine-ish")
    det = create("generalized-odin", **TINY, epochs=1, weight_decay=1e-3, perturb=False).fit(digits["x"][:64], labels=digits["y"][:64])
    groups = det._trainable()
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["params"][0] is det.head.h.weight
    assert sum(len(g["params"]) for g in groups) == len(list(det.net.parameters())) + len(list(det.head.parameters()))
