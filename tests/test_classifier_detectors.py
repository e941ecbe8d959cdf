"""ODIN, Mahalanobis (untuned and tuned), layers-clf and oe-classifier against their definitions,
computed independently from the classifier's taps on a tiny network; the classifier suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from oodscope.cli import cli
from oodscope.data import load
from oodscope.detectors import create
from oodscope.detectors.oe_classifier import uniform_cross_entropy
from oodscope.errors import InputError

TINY = {"widths": [4, 8], "hidden": 16, "epochs": 3, "amp": False, "progress": False}


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    train, test = load("digits", "train"), load("digits", "test")
    inside = np.isin(train.labels, [0, 1, 2])
    return {"x": train.images[inside], "y": train.labels[inside], "test": test.images[np.isin(test.labels, [0, 1, 2])],
            "outliers": train.images[train.labels == 7][:16], "ood": test.images[np.isin(test.labels, [5, 8])]}


def _fit(method: str, d: dict[str, np.ndarray], upstream=None, **kw):
    det = create(method, **TINY, **kw)
    return det.fit(d["x"], d["outliers"] if det.requires.outliers else None, labels=d["y"], upstream=upstream)


def _pooled_taps(det, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        taps = det.upstream.taps(torch.as_tensor(x, dtype=torch.float32) / 255)
    return {k: (v.mean(dim=(2, 3)) if v.dim() == 4 else v).double().numpy() for k, v in taps.items()}


def test_odin_without_perturbation_is_msp_at_temperature_t(digits) -> None:
    det = _fit("odin", digits, temperature=7.0, eps=0.0)
    out = det.outputs(digits["test"][:20])
    z = out["logits"].astype(np.float64) / 7.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out["score"], -(p / p.sum(axis=1, keepdims=True)).max(axis=1), atol=1e-6)


def test_odin_perturbation_raises_the_tempered_max_softmax(digits) -> None:
    det = _fit("odin", digits, temperature=1000.0, eps=0.01)
    x = torch.as_tensor(digits["test"][:40], dtype=torch.float32) / 255
    xt = det.perturb(x)
    step = (xt - x).abs() / 0.01
    assert torch.all((step < 1e-6) | ((step - 1).abs() < 1e-4)) and (step > 0.5).float().mean() > 0.5  # eps per pixel (authors' code)

    def log_s(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(det.upstream.taps(images)["logits"].double() / 1000.0, dim=1).max(dim=1).values

    gain = log_s(xt) - log_s(x)
    assert (gain > 0).float().mean() > 0.9, "the step goes up the gradient of log S, not down"
    np.testing.assert_allclose(det.score(x.numpy()), -torch.exp(log_s(xt)).numpy(), atol=1e-6)
    with pytest.raises(InputError, match="eps"):
        create("odin", eps=-1.0)


def test_mahalanobis_distance_against_numpy_with_the_tied_covariance(digits) -> None:
    det = _fit("mahalanobis", digits)
    assert det.fitted["layers"] == ["z1", "z2", "z3"]
    train, test = _pooled_taps(det, digits["x"]), _pooled_taps(det, digits["test"][:25])
    y = digits["y"]
    expected = []
    for layer in det.fitted["layers"]:
        f = train[layer]
        means = np.stack([f[y == c].mean(axis=0) for c in range(3)])
        resid = np.concatenate([f[y == c] - means[c] for c in range(3)])
        cov = resid.T @ resid / len(f)  # one covariance shared by the classes
        prec = np.linalg.pinv(cov)
        diff = test[layer][:, None, :] - means[None]
        expected.append(np.einsum("nkd,de,nke->nk", diff, prec, diff).min(axis=1))
    expected = np.stack(expected, axis=1)
    out = det.outputs(digits["test"][:25])
    np.testing.assert_allclose(out["layer_scores"], expected, rtol=1e-4, atol=1e-4)
    loc, scale = det.loc.numpy(), det.scale.numpy()
    np.testing.assert_allclose(out["score"], ((expected - loc) / scale).sum(axis=1), rtol=1e-4, atol=1e-4)
    last = _fit("mahalanobis", digits, upstream=det, combine="last")
    assert last.fitted["layers"] == ["z3"]


def test_mahalanobis_preprocessing_moves_images_towards_their_class(digits) -> None:
    plain = _fit("mahalanobis", digits, combine="last")
    moved = _fit("mahalanobis", digits, upstream=plain, combine="last", eps=0.01)
    x = digits["test"][:30]
    closer = moved.outputs(x)["layer_scores"][:, 0] < plain.outputs(x)["layer_scores"][:, 0]
    assert closer.mean() > 0.9
    with pytest.raises(InputError, match="unknown layers"):
        _fit("mahalanobis", digits, upstream=plain, layers=["z9"])


def test_mahalanobis_steps_eps_in_pixel_units_with_a_float32_gradient(digits) -> None:
    plain = _fit("mahalanobis", digits, combine="last")
    bf16 = _fit("mahalanobis", digits, upstream=plain, combine="last", eps=0.02, precision="bfloat16")
    x = torch.as_tensor(digits["test"][:20], dtype=torch.float32) / 255
    taken = []
    orig = bf16.upstream.taps

    def spy(images, dropout=False, precision=None):  # the images each tap pass is given, and in which precision
        taken.append((images.detach().clone(), precision))
        return orig(images, dropout=dropout, precision=precision)

    bf16.upstream.taps = spy
    bf16.layer_distance(x, "z3")
    (grad_in, grad_precision), (stepped, _) = taken
    assert grad_precision == "float32" and torch.equal(grad_in, x)
    step = (stepped - x).abs()
    assert torch.all((step < 1e-7) | ((step - 0.02).abs() < 1e-6)) and (step > 0).float().mean() > 0.5


def test_mahalanobis_refuses_a_fit_sample_missing_a_class(digits) -> None:
    plain = _fit("mahalanobis", digits, combine="last")
    with pytest.raises(InputError, match=r"no image among the 2 fit images; raise fit_samples"):
        _fit("mahalanobis", digits, upstream=plain, fit_samples=2)
    det = _fit("mahalanobis", digits, upstream=plain, fit_samples=60)  # every class drawn: the same three means
    assert det.gaussians["z3"][0].shape[0] == 3 and torch.isfinite(det.gaussians["z3"][0]).all()


def test_mahalanobis_tuned_is_a_logistic_regression_on_the_named_outliers(digits) -> None:
    det = _fit("mahalanobis-tuned", digits, eps_grid=[0.0, 0.01])
    assert det.fitted["eps"] in (0.0, 0.01) and 0 <= det.fitted["tune_auroc"] <= 100
    out = det.outputs(digits["test"][:25])
    z = (out["layer_scores"] - det.loc.numpy()) / det.scale.numpy()
    np.testing.assert_allclose(out["score"], z @ det.coef.numpy() + det.intercept.numpy()[0], rtol=1e-9)
    assert det.score(digits["outliers"]).mean() > det.score(digits["x"][:200]).mean()  # it learnt which side is OOD
    with pytest.raises(InputError, match="outlier"):
        create("mahalanobis-tuned", **TINY).fit(digits["x"], labels=digits["y"])


def test_layers_clf_reads_the_classifier_taps_and_learns_the_outliers(digits) -> None:
    det = _fit("layers-clf", digits, taps=["z2", "softmax"], g_steps=60)
    assert det.fitted["taps"] == ["z2", "softmax"]
    s_in, s_out = det.score(digits["x"][:200]), det.score(digits["outliers"])
    assert ((0 < s_in) & (s_in < 1)).all() and s_out.mean() > s_in.mean()
    with pytest.raises(InputError, match="unknown taps"):
        _fit("layers-clf", digits, upstream=det, taps=["z7"])


def test_oe_classifier_loss_and_score(digits) -> None:
    z = torch.randn(5, 4, dtype=torch.float64)
    np.testing.assert_allclose(uniform_cross_entropy(z).numpy(), -torch.log_softmax(z, dim=1).mean(dim=1).numpy())
    oe = _fit("oe-classifier", digits, oe_weight=1.0)
    out = oe.outputs(digits["test"][:20])
    z = out["logits"].astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out["score"], -(p / p.sum(axis=1, keepdims=True)).max(axis=1), atol=1e-6)
    plain = _fit("msp", digits)
    assert oe.score(digits["outliers"]).mean() > plain.score(digits["outliers"]).mean()  # less confident on them


def test_classifier_suite_leaves_out_detectors_needing_outliers_without_a_source(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "suite"
    r = CliRunner().invoke(cli, ["bench", "--suite", "classifier", "--protocol", "mnist-vs-letters",
                                 "--methods", "msp,mahalanobis,layers-clf", "--seeds", "0", "--preset", "smoke",
                                 "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1",
                                 "--no-disk-cache", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "left out (they need known outliers): layers-clf" in r.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [row["method"] for row in rows] == ["msp", "mahalanobis"]
    assert (out / "table.md").read_text().count("| mahalanobis |") == 1
    (out / "table.md").write_text("stale")  # as after `oodscope merge`: --tables-only rewrites it from the summary
    redraw = CliRunner().invoke(cli, ["bench", "--tables-only", "--out", str(out)])
    assert redraw.exit_code == 0, redraw.output
    assert (out / "table.md").read_text() == (out / "summary.md").read_text()
    one_class = CliRunner().invoke(cli, ["bench", "--suite", "classifier", "--out", str(tmp_path / "x")])
    assert one_class.exit_code != 0 and "multi-class benchmark" in one_class.output
    other = CliRunner().invoke(cli, ["bench", "--suite", "classifier", "--protocol", "split-mnist", "--methods", "ae",
                                     "--out", str(tmp_path / "x")])
    assert other.exit_code != 0 and "not ae" in other.output
