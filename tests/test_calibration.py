"""ECE (as Takahashi's lecture notes "Deep learning: reliability of inference", University of Aizu,
n.d., define it, and Guo et al.'s form), NLL and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from oodscope.calibration import (TemperatureScaler, expected_calibration_error, negative_log_likelihood,
                                  reliability_bins)
from oodscope.errors import InputError


def test_ece_by_hand_with_bin_centres_and_bin_means() -> None:
    # 2 bins: confidences 0.3 (wrong), 0.5 (right) in bin 1 = (0, 0.5]; 0.9 (right), 0.7 (wrong) in bin 2
    probs = np.array([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    labels = np.array([1, 0, 0, 0])
    r = reliability_bins(probs, labels, bins=2)
    # q: 0.7, 0.5, 0.9, 0.7 -> bins 2, 1, 2, 2; correct: yes, yes (argmax 0 = label), yes, no
    np.testing.assert_array_equal(r.counts, [1, 3])
    np.testing.assert_allclose(r.accuracy, [1.0, 2 / 3])
    np.testing.assert_allclose(r.confidence, [0.5, (0.7 + 0.9 + 0.7) / 3])
    centre = 1 / 4 * abs(1.0 - 0.25) + 3 / 4 * abs(2 / 3 - 0.75)
    mean = 1 / 4 * abs(1.0 - 0.5) + 3 / 4 * abs(2 / 3 - 2.3 / 3)
    assert expected_calibration_error(probs, labels, bins=2) == pytest.approx(centre)
    assert expected_calibration_error(probs, labels, bins=2, confidence="mean") == pytest.approx(mean)


def test_a_perfectly_calibrated_sample_has_a_small_ece_and_nll_is_the_mean_log_loss() -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform(0.5, 1.0, 200_000)
    probs = np.stack([q, 1 - q], axis=1)
    labels = (rng.uniform(size=q.size) > q).astype(int)  # class 0 is right with probability q
    assert expected_calibration_error(probs, labels, confidence="mean") < 0.005
    assert negative_log_likelihood(probs, labels) == pytest.approx(-np.mean(np.log(probs[np.arange(q.size), labels])))


def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=4.0, size=(20_000, 5))
    p = np.exp(logits / 2.5)
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in p])
    scaler = TemperatureScaler().fit(logits, labels)
    assert scaler.temperature == pytest.approx(2.5, rel=0.05)
    after = scaler.probabilities(logits)
    np.testing.assert_array_equal(after.argmax(axis=1), logits.argmax(axis=1))  # accuracy unchanged
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    before = soft / soft.sum(axis=1, keepdims=True)
    assert negative_log_likelihood(after, labels) < negative_log_likelihood(before, labels)
    assert expected_calibration_error(after, labels) < expected_calibration_error(before, labels)


def test_bad_inputs_are_named() -> None:
    good = np.array([[0.2, 0.8]])
    with pytest.raises(InputError, match="sum to 1"):
        expected_calibration_error(np.array([[0.2, 0.3]]), np.array([0]))
    with pytest.raises(InputError, match="labels"):
        expected_calibration_error(good, np.array([2]))
    with pytest.raises(InputError, match="non-empty"):
        expected_calibration_error(np.zeros((0, 2)), np.zeros(0, int))
    with pytest.raises(InputError, match="confidence"):
        expected_calibration_error(good, np.array([1]), confidence="median")
    with pytest.raises(InputError, match="not fitted"):
        TemperatureScaler().probabilities(good)
    with pytest.raises(InputError, match="finite"):
        TemperatureScaler().fit(np.array([[np.nan, 1.0]]), np.array([0]))


def test_reliability_diagram_draws_one_panel_per_entry(tmp_path) -> None:
    from PIL import Image

    from oodscope.figures.reliability import reliability_figure
    from oodscope.figures.style import save_png

    rng = np.random.default_rng(0)
    q = rng.uniform(0.5, 1.0, 500)
    probs, labels = np.stack([q, 1 - q], axis=1), (rng.uniform(size=500) > q).astype(int)
    r = reliability_bins(probs, labels)
    fig = reliability_figure({"a": (r, "ECE 1 %"), "b": (r, "ECE 2 %")}, "test")
    assert [ax.get_title() for ax in fig.axes] == ["a\nECE 1 %", "b\nECE 2 %"]
    path = save_png(fig, tmp_path / "rel.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_uncertainty_scores_by_hand() -> None:
    import torch

    from oodscope.calibration import uncertainty_scores

    # 3 passes, 2 images, 2 classes: image 0 agreed and confident, image 1 split 2:1
    probs = torch.tensor([[[0.9, 0.1], [0.8, 0.2]],
                          [[0.9, 0.1], [0.3, 0.7]],
                          [[0.9, 0.1], [0.6, 0.4]]], dtype=torch.float64)
    s = uncertainty_scores(probs)

    def h(p):
        p = np.asarray(p)
        return -np.sum(p * np.log(p))

    mean1 = np.array([0.8 + 0.3 + 0.6, 0.2 + 0.7 + 0.4]) / 3
    np.testing.assert_allclose(s["max-prob"].numpy(), [-0.9, -mean1.max()])
    np.testing.assert_allclose(s["entropy"].numpy(), [h([0.9, 0.1]), h(mean1)])
    np.testing.assert_allclose(s["variation-ratio"].numpy(), [0.0, 1 / 3])  # 1 of 3 votes off the majority
    mi1 = h(mean1) - np.mean([h([0.8, 0.2]), h([0.3, 0.7]), h([0.6, 0.4])])
    np.testing.assert_allclose(s["mi"].numpy(), [0.0, mi1], atol=1e-12)
    assert mi1 > 0


def test_mc_dropout_passes_differ_and_leave_the_network_in_eval_mode() -> None:
    from oodscope.data import load
    from oodscope.detectors import create

    train, test = load("digits", "train"), load("digits", "test")
    det = create("mc-dropout", widths=[8, 16], hidden=32, epochs=5, batch_size=64, progress=False, passes=8)
    det.fit(train.subset(np.isin(train.labels, [0, 1, 2])))
    x = test.images[:40]
    out = det.outputs(x)
    assert set(out) >= {"score", "logits", "mi", "entropy", "max-prob", "variation-ratio"}
    assert (out["mi"] > 1e-6).any(), "the passes must differ: dropout stays on at test time"
    np.testing.assert_array_equal(out["score"], out["mi"])
    np.testing.assert_array_equal(det.outputs(x)["score"], out["score"])  # same draws for the same call
    assert not any(m.training for m in det.upstream.net.modules())
    with pytest.raises(InputError, match="dropout"):
        create("mc-dropout", dropout=0.0)
    with pytest.raises(InputError, match="passes"):
        create("mc-dropout", passes=1)
