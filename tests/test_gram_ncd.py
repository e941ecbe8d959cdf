"""Gram-matrix and NCD detectors on a classifier's feature maps: their building blocks against
hand-computed cases, and their scores against independent NumPy recomputations from the saved
statistics and the classifier's taps on a tiny fitted classifier."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file

from oodscope.detectors import create, load
from oodscope.detectors.gram import deviation, gram_rowsums
from oodscope.model_files import sha256_of
from oodscope.detectors.ncd import ncd
from oodscope.errors import InputError, ModelFileError

TINY = {"widths": [4, 8], "hidden": 8, "epochs": 2, "progress": False}


@pytest.fixture(scope="module")
def toy() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (100, 1, 12, 12), dtype=np.uint8)
    return {"train": images[:60], "labels": np.arange(60) % 3, "val": images[60:80], "test": images[80:]}


def _taps(det, images: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        taps = det.upstream.taps(torch.from_numpy(images.astype(np.float32) / 255))
    return {k: v.double().numpy() for k, v in taps.items()}


def _saved(det, path: Path) -> dict[str, np.ndarray]:
    return load_file(str(det.save(path) / "weights.safetensors"))


# -- gram ------------------------------------------------------------------------------------
def test_deviation_is_zero_inside_and_relative_outside() -> None:
    mins, maxs = np.array([2.0, -4.0, 0.0, 1.0]), np.array([5.0, -1.0, 0.0, 3.0])
    values = np.array([1.0, -6.0, 0.5, 2.0])
    expected = [(2 - 1) / 2, (-4 - -6) / 4, 0.5 / 1e-6, 0.0]  # below, below, above a zero max (floored), inside
    np.testing.assert_allclose(deviation(values, mins, maxs), expected)
    np.testing.assert_allclose(deviation(np.array([7.0, 0.0]), np.array([1.0, 1.0]), np.array([5.0, 2.0])),
                               [(7 - 5) / 5, (1 - 0) / 1])


def test_gram_row_sums_on_a_hand_computed_2x3_map() -> None:
    f = torch.tensor([[[1.0, -2.0, 0.0], [-1.0, 1.0, 0.5]]])  # one image, C=2 channels, HW=3
    # p=1: F F^T = [[5, -3], [-3, 2.25]] -> row sums [2, -0.75]
    # p=2: F^2 (F^2)^T = [[17, 5], [5, 2.0625]] -> [22, 7.0625] -> sqrt
    # p=3: F^3 (F^3)^T = [[65, -9], [-9, 2.015625]] -> [56, -6.984375] -> sign-preserving cube root
    expected = [[2.0, -0.75], [22**0.5, 7.0625**0.5], [56 ** (1 / 3), -(6.984375 ** (1 / 3))]]
    g = gram_rowsums(f, 3)
    assert g.dtype == torch.float64 and g.shape == (1, 3, 2)
    np.testing.assert_allclose(g[0].numpy(), expected, rtol=1e-12)
    # a vector tap is a C x 1 map: s_i = f_i^p sum_j f_j^p, root: f_i (sum_j f_j^p)^(1/p)
    vec = gram_rowsums(torch.tensor([[1.0, 2.0, 3.0]]), 2)
    np.testing.assert_allclose(vec[0].numpy(), [[6, 12, 18], [14**0.5, 2 * 14**0.5, 3 * 14**0.5]], rtol=1e-12)


def _numpy_gram(maps: np.ndarray, powers: int) -> np.ndarray:
    """(N, P, C) with the full Gram matrices, as the paper writes them."""
    f = maps.reshape(maps.shape[0], maps.shape[1], -1)
    out = []
    for p in range(1, powers + 1):
        s = np.matmul(f**p, np.swapaxes(f**p, 1, 2)).sum(axis=2)
        out.append(np.sign(s) * np.abs(s) ** (1 / p))
    return np.stack(out, axis=1)


def _numpy_deviations(g: np.ndarray, pred: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    mn, mx = mins[pred], maxs[pred]
    below = np.where(g < mn, (mn - g) / np.maximum(np.abs(mn), 1e-6), 0.0)
    above = np.where(g > mx, (g - mx) / np.maximum(np.abs(mx), 1e-6), 0.0)
    return (below + above).sum(axis=(1, 2))


def test_gram_score_matches_a_numpy_recomputation(toy, tmp_path: Path) -> None:
    det = create("gram", powers=4, **TINY).fit(toy["train"], labels=toy["labels"], validation=toy["val"])
    layers = det.fitted["gram"]["layers"]
    assert layers == ["z1", "z2", "z3"] and det.fitted["gram"]["held_out_from"] == "validation"
    saved = _saved(det, tmp_path / "gram")
    train, val, test = _taps(det, toy["train"]), _taps(det, toy["val"]), _taps(det, toy["test"])
    pred_train, pred_val, pred_test = (t["logits"].argmax(axis=1) for t in (train, val, test))
    norms, score = [], np.zeros(len(toy["test"]))
    for k in layers:
        g = _numpy_gram(train[k], 4)
        groups = [g[pred_train == c] if (pred_train == c).any() else g for c in range(3)]
        mins, maxs = np.stack([x.min(axis=0) for x in groups]), np.stack([x.max(axis=0) for x in groups])
        np.testing.assert_allclose(saved[f"gram.{k}.mins"], mins, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(saved[f"gram.{k}.maxs"], maxs, rtol=1e-5, atol=1e-6)
        norm = _numpy_deviations(_numpy_gram(val[k], 4), pred_val, mins, maxs).mean()
        norms.append(norm)
        score += _numpy_deviations(_numpy_gram(test[k], 4), pred_test, saved[f"gram.{k}.mins"],
                                   saved[f"gram.{k}.maxs"]) / saved["gram.norms"][layers.index(k)]
    np.testing.assert_allclose(saved["gram.norms"], norms, rtol=1e-4)
    out = det.outputs(toy["test"])
    np.testing.assert_allclose(out["score"], score, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(out["logits"].argmax(axis=1), pred_test)
    assert (out["score"] >= 0).all()


def test_gram_holds_out_training_images_without_validation(toy) -> None:
    det = create("gram", layers=["z2"], powers=2, fit_samples=30, **TINY).fit(toy["train"], labels=toy["labels"])
    facts = det.fitted["gram"]
    assert facts["layers"] == ["z2"] and facts["held_out_from"] == "training"
    assert facts["held_out_images"] == 12 and facts["fit_images"] == 30  # a fifth held out, then fit_samples
    assert det.score(toy["test"]).shape == (len(toy["test"]),)


def test_gram_settings_are_checked(toy) -> None:
    with pytest.raises(InputError, match="powers must be at least 1"):
        create("gram", powers=0)
    with pytest.raises(InputError, match="distinct"):
        create("gram", layers=["z1", "z1"])
    with pytest.raises(InputError, match=r"unknown layers \['z9'\].*taps are z1, z2, z3"):
        create("gram", layers=["z9"], **TINY).fit(toy["train"], labels=toy["labels"])


# -- ncd -------------------------------------------------------------------------------------
def test_ncd_of_byte_strings() -> None:
    rng = np.random.default_rng(0)
    a, other = rng.integers(0, 256, 500, dtype=np.uint8).tobytes(), rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    c = [len(zlib.compress(s, 9)) for s in (a, other, a + other)]
    assert ncd(a, other) == (c[2] - min(c[:2])) / max(c[:2])
    assert ncd(a, a) < 0.1  # the second copy costs a back-reference
    assert 0.95 < ncd(a, other) < 1.1  # nothing shared
    text = b"abcabcabd" * 20
    assert ncd(text, text) < ncd(text, other)
    assert ncd(a, other, len(zlib.compress(a, 9)), len(zlib.compress(other, 9))) == ncd(a, other)


def _quantise(maps: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.round((maps - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def _c(s: bytes) -> int:
    return len(zlib.compress(s, 9))


def _ncd_vector(maps: np.ndarray, refs: np.ndarray, c: int, lo: float, hi: float) -> np.ndarray:
    """[GAP of each channel, NCD(x_k, ref_{c,k}) of each channel] of one image's maps (K, L)."""
    q = _quantise(maps, lo, hi)
    d = []
    for k in range(maps.shape[0]):
        a, b = q[k].tobytes(), refs[c, k].tobytes()
        d.append((_c(a + b) - min(_c(a), _c(b))) / max(_c(a), _c(b)))
    return np.r_[maps.mean(axis=1), d]


def test_ncd_score_matches_an_independent_recomputation(toy, tmp_path: Path) -> None:
    det = create("ncd", **TINY).fit(toy["train"], labels=toy["labels"])
    assert det.fitted["ncd"]["layers"] == ["z1", "z2"] and det.fitted["ncd"]["fit_images"] == 60
    saved = _saved(det, tmp_path / "ncd")
    train, test = _taps(det, toy["train"]), _taps(det, toy["test"][:5])
    labels = toy["labels"]
    expected = np.zeros(5)
    for k in ("z1", "z2"):
        maps = train[k].reshape(60, train[k].shape[1], -1)
        lo, hi = maps.min(), maps.max()
        np.testing.assert_allclose(saved[f"ncd.{k}.range"], [lo, hi], rtol=1e-6)
        class_means = np.stack([maps[labels == c].mean(axis=0) for c in range(3)])
        refs = saved[f"ncd.{k}.refs"]
        assert np.abs(refs.astype(int) - _quantise(class_means, lo, hi)).max() <= 1
        assert (refs == _quantise(class_means, lo, hi)).mean() > 0.99
        vectors = np.stack([_ncd_vector(maps[i], refs, labels[i], lo, hi) for i in range(60)])
        means = np.stack([vectors[labels == c].mean(axis=0) for c in range(3)])
        centred = vectors - means[labels]
        cov = centred.T @ centred / 60
        np.testing.assert_allclose(saved[f"ncd.{k}.means"], means, rtol=1e-6, atol=1e-9)
        prec = saved[f"ncd.{k}.precision"]
        np.testing.assert_allclose(cov @ prec @ cov, cov, atol=1e-6 * np.abs(cov).max())  # a pseudo-inverse of cov
        t = test[k].reshape(5, test[k].shape[1], -1)
        for i in range(5):
            dist = []
            for c in range(3):
                d = _ncd_vector(t[i], refs, c, *saved[f"ncd.{k}.range"]) - saved[f"ncd.{k}.means"][c]
                dist.append(d @ prec @ d)
            expected[i] += min(dist)
    out = det.outputs(toy["test"][:5])
    np.testing.assert_allclose(out["score"], expected, rtol=1e-6)
    assert out["logits"].shape == (5, 3)


def test_ncd_settings_are_checked(toy) -> None:
    with pytest.raises(InputError, match="fit_samples must be at least 1"):
        create("ncd", fit_samples=0)
    with pytest.raises(InputError, match=r"\['z3'\] are vectors"):
        create("ncd", layers=["z3"], **TINY).fit(toy["train"], labels=toy["labels"])
    with pytest.raises(InputError, match=r"unknown layers \['conv'\].*spatial taps are z1, z2"):
        create("ncd", layers=["conv"], **TINY).fit(toy["train"], labels=toy["labels"])


# -- both ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, tensor", [("gram", "gram.z2.maxs"), ("ncd", "ncd.z1.refs")])
def test_saved_statistics_that_do_not_fit_the_config_are_refused(toy, tmp_path: Path, method: str, tensor: str) -> None:
    det = create(method, layers=["z1", "z2"], **TINY).fit(toy["train"], labels=toy["labels"])
    path = det.save(tmp_path / method)
    weights = load_file(str(path / "weights.safetensors"))

    def rewrite(w: dict[str, np.ndarray]) -> None:
        save_file({k: torch.from_numpy(v) for k, v in w.items()}, str(path / "weights.safetensors"))
        meta = json.loads((path / "config.json").read_text())
        meta["weights_sha256"] = sha256_of(path / "weights.safetensors")
        (path / "config.json").write_text(json.dumps(meta))

    rewrite({k: v for k, v in weights.items() if k != tensor})
    with pytest.raises(ModelFileError, match="do not match the saved layers"):
        load(path)
    rewrite({**weights, tensor: weights[tensor][:1]})
    with pytest.raises(ModelFileError, match=f"{tensor} has shape"):
        load(path)
    rewrite(weights)
    np.testing.assert_array_equal(load(path).score(toy["test"]), det.score(toy["test"]))
