"""``dgc`` and ``layerwise-uncertainty`` against their definitions, recomputed independently from
the taps and the saved parameters of tiny trained networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from scipy.stats import multivariate_normal

from oodscope.data import load
from oodscope.detectors import create, load as load_model
from oodscope.detectors.layerwise_uncertainty import kl_term, stages
from oodscope.errors import InputError

TINY = {"widths": [4, 8], "hidden": 16, "epochs": 3, "amp": False, "progress": False}


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    train, test = load("digits", "train"), load("digits", "test")
    inside = np.isin(train.labels, [0, 1, 2])
    keep = np.isin(test.labels, [0, 1, 2])
    return {"x": train.images[inside], "y": train.labels[inside], "val": test.images[keep], "val_y": test.labels[keep],
            "ood": test.images[np.isin(test.labels, [5, 8])]}


def _fit(method: str, d: dict[str, np.ndarray], validation: bool = False, **kw):
    s = {**TINY, **kw}
    extra = {"validation": d["val"], "validation_labels": d["val_y"]} if validation else {}
    return create(method, **s).fit(d["x"], labels=d["y"], **extra)


def _taps(det, x: np.ndarray) -> dict[str, np.ndarray]:
    det._train_mode(False)
    with torch.no_grad():
        return {k: v.double().numpy() for k, v in det.taps(torch.as_tensor(x, dtype=torch.float32) / 255).items()}


# -- dgc -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance", ["identity", "diagonal"])
def test_dgc_logits_are_class_gaussian_log_densities_and_the_score_the_closest_mean(digits, covariance, tmp_path: Path) -> None:
    det = _fit("dgc", digits, covariance=covariance, epochs=6)
    x = digits["val"][:25]
    out = det.outputs(x)
    z = _taps(det, x)["logits"]  # the latent vector: the last linear layer's output
    assert z.shape == (25, 32) and out["logits"].shape == (25, 3)
    saved = load_file(str(det.save(tmp_path / "m") / "weights.safetensors"))
    means = saved["head.means"].astype(np.float64)
    var = np.exp(saved["head.log_var"].astype(np.float64)) if covariance == "diagonal" else np.ones(means.shape[1])
    assert ("head.log_var" in saved) == (covariance == "diagonal")
    if covariance == "diagonal":
        assert np.ptp(var) > 0  # learnt: the check below is not the identity case again
    dens = np.stack([multivariate_normal(mean=m, cov=np.diag(var)).logpdf(z) for m in means], axis=1)
    np.testing.assert_allclose(out["logits"], dens + np.log(1 / 3), rtol=1e-4, atol=1e-3)
    d = (((z[:, None, :] - means[None]) ** 2) / var).sum(axis=2)
    np.testing.assert_allclose(out["score"], d.min(axis=1), rtol=1e-5, atol=1e-5)
    assert (out["logits"].argmax(axis=1) == d.argmin(axis=1)).all()


def test_dgc_pull_term_draws_the_latent_vectors_to_their_class_means(digits) -> None:
    def spread(det) -> float:  # mean own-class distance, relative to the distances between the means
        z, y = _taps(det, digits["x"])["logits"], digits["y"]
        mu = det.head.means.detach().double().numpy()
        own = ((z - mu[y]) ** 2).sum(axis=1).mean()
        between = ((mu[:, None] - mu[None]) ** 2).sum(axis=2)[np.triu_indices(3, 1)].mean()
        return own / between

    pulled, free = _fit("dgc", digits, center_weight=1.0, epochs=20), _fit("dgc", digits, center_weight=0.0, epochs=20)
    assert spread(pulled) < 0.5 * spread(free)
    assert (pulled.outputs(digits["x"])["logits"].argmax(axis=1) == digits["y"]).mean() > 0.8


def test_dgc_loss_is_cross_entropy_plus_the_weighted_half_distance(digits) -> None:
    det = _fit("dgc", digits, covariance="diagonal", center_weight=0.7, epochs=1)
    x = torch.as_tensor(digits["x"][:16], dtype=torch.float32) / 255
    y = torch.as_tensor(digits["y"][:16])
    with torch.no_grad():
        taps = det.taps(x)
        z, mu, lv = taps["logits"].double(), det.head.means.double(), det.head.log_var.double()
        d = ((z[:, None] - mu[None]) ** 2 / lv.exp()).sum(dim=2)
        logits = -0.5 * (d + lv.sum() + z.shape[1] * np.log(2 * np.pi)) - np.log(3)
        expected = F.cross_entropy(logits, y) + 0.7 * 0.5 * (d[torch.arange(16), y].mean() + lv.sum())
        assert float(det.loss(taps, y, None)) == pytest.approx(float(expected), rel=1e-5)


def test_dgc_settings_are_checked() -> None:
    for bad, match in [({"latent": 0}, "latent"), ({"center_weight": -1.0}, "center_weight"), ({"covariance": "full"}, "covariance")]:
        with pytest.raises(InputError, match=match):
            create("dgc", **bad)


# -- layerwise-uncertainty -------------------------------------------------------------------------
def test_layerwise_kl_terms_are_the_gaussian_kl_divergences() -> None:
    z, log_var = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    q = torch.distributions.Normal(z, torch.exp(0.5 * log_var))
    standard = torch.distributions.kl_divergence(q, torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z)))
    same_mean = torch.distributions.kl_divergence(q, torch.distributions.Normal(z, torch.ones_like(z)))
    torch.testing.assert_close(kl_term(z, log_var, "standard"), standard)
    torch.testing.assert_close(kl_term(z, log_var, "same-mean"), same_mean)


@pytest.mark.parametrize("prior", ["standard", "same-mean"])
def test_layerwise_loss_is_cross_entropy_plus_the_weighted_mean_kl_of_each_layer(digits, prior) -> None:
    det = _fit("layerwise-uncertainty", digits, kl_prior=prior, kl_weight=0.3, epochs=1)
    x = torch.as_tensor(digits["x"][:16], dtype=torch.float32) / 255
    y = torch.as_tensor(digits["y"][:16])
    with torch.no_grad():
        taps = det.taps(x)
        kl = 0.0
        for name in ("z1", "z2", "z3"):
            m, lv = taps[name].double(), taps[f"logvar_{name}"].double()
            p = torch.distributions.Normal(torch.zeros_like(m) if prior == "standard" else m, torch.ones_like(m))
            kl += torch.distributions.kl_divergence(torch.distributions.Normal(m, torch.exp(0.5 * lv)), p).mean()
        expected = F.cross_entropy(taps["logits"].double(), y) + 0.3 * kl
        assert float(det.loss(taps, y, None)) == pytest.approx(float(expected), rel=1e-5)


def test_layerwise_noise_only_while_training(digits) -> None:
    det = _fit("layerwise-uncertainty", digits)
    x = torch.as_tensor(digits["val"][:20], dtype=torch.float32) / 255
    np.testing.assert_array_equal(det.score(digits["val"]), det.score(digits["val"]))
    with torch.no_grad():
        det._train_mode(False)
        clean = det.taps(x)
        plain = det.net.taps(det.normalize(x).contiguous(memory_format=torch.channels_last))  # the layer-by-layer pass is the network's own
        for k in ("z1", "z2", "z3", "logits"):
            torch.testing.assert_close(clean[k], plain[k].float())
        det._train_mode(True)
        noisy_a, noisy_b = det.taps(x), det.taps(x)
        det._train_mode(False)
    torch.testing.assert_close(noisy_a["z1"], clean["z1"])  # the first tap is computed before any noise
    assert not torch.allclose(noisy_a["logits"], noisy_b["logits"])
    assert not torch.allclose(noisy_a["logits"], clean["logits"])


def test_layerwise_score_combines_the_standardised_layer_uncertainties(digits, tmp_path: Path) -> None:
    det = _fit("layerwise-uncertainty", digits, validation=True)
    assert det.fitted["terms"] == ["z1", "z2", "z3", "entropy"]
    saved = load_file(str(det.save(tmp_path / "m") / "weights.safetensors"))
    mean, std = saved["stats.mean"], saved["stats.std"]

    def raw(x: np.ndarray) -> np.ndarray:
        taps = _taps(det, x)
        u = [taps[f"logvar_{k}"].reshape(len(x), -1).mean(axis=1) for k in ("z1", "z2", "z3")]
        lg = taps["logits"]
        p = np.exp(lg - lg.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return np.stack([*u, -(p * np.log(p)).sum(axis=1)], axis=1)

    ref = raw(digits["val"])  # the constants come from the validation images when given
    np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std, ref.std(axis=0), rtol=1e-6, atol=1e-9)
    x = np.r_[digits["val"][:10], digits["ood"][:10]]
    t = (raw(x) - mean) / std
    expected = {("sum", True): t.sum(axis=1), ("sum", False): t[:, :3].sum(axis=1),
                ("last", True): t[:, 2] + t[:, 3], ("last", False): t[:, 2],
                ("max", True): t.max(axis=1), ("max", False): t[:, :3].max(axis=1)}
    for (combine, with_entropy), want in expected.items():
        det.config.update(combine=combine, with_entropy=with_entropy)  # scoring settings only: same network
        np.testing.assert_allclose(det.score(x), want, rtol=1e-6, atol=1e-6)
    back = load_model(det.save(tmp_path / "m2"))
    np.testing.assert_array_equal(back.score(x), det.score(x))


def test_layerwise_constants_without_validation_come_from_training_images(digits) -> None:
    det = _fit("layerwise-uncertainty", digits, epochs=1)  # fewer than 1000 training images: all of them
    taps = _taps(det, digits["x"])
    u3 = taps["logvar_z3"].mean(axis=1)
    assert det.stat_mean[2].item() == pytest.approx(u3.mean(), rel=1e-6, abs=1e-9)
    assert det.stat_std[2].item() == pytest.approx(u3.std(), rel=1e-6, abs=1e-9)


def test_layerwise_runs_a_residual_network_layer_by_layer(digits) -> None:
    det = _fit("layerwise-uncertainty", digits, arch="small", widths=[4, 8, 8], epochs=1)
    assert det.fitted["terms"] == ["z1", "z2", "z3", "z4", "entropy"]
    x = torch.as_tensor(digits["val"][:8], dtype=torch.float32) / 255
    with torch.no_grad():
        det._train_mode(False)
        ours, plain = det.taps(x), det.net.taps(det.normalize(x).contiguous(memory_format=torch.channels_last))
    for k in ("z1", "z2", "z3", "z4", "logits"):
        torch.testing.assert_close(ours[k], plain[k].float())
    assert np.isfinite(det.score(digits["ood"][:8])).all()
    with pytest.raises(InputError, match="layer-by-layer"):
        stages(torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match="kl_weight"):
        create("layerwise-uncertainty", kl_weight=-0.1)
