"""Reference tests of the post hoc detectors on the penultimate features (the second generation:
OpenOOD v1.5's post hoc ranking), each score re-implemented here in NumPy from its paper's formula
and compared with what the detector returns, on the tiny digits classifier of ``test_reference``
(its network run by the test itself, no oodscope helper in the computation).

Papers:

* react: Sun, Guo & Li, "ReAct: out-of-distribution detection with rectified activations",
  NeurIPS 2021 (threshold: the p-th percentile of every training activation, p = 90);
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from test_reference import _clf_taps, _fit, _images, clf, data  # noqa: F401  (pytest fixtures)

from oodscope.detectors import load

RTOL = 1e-6


def _features(det, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Penultimate features, W and b of the detector's classifier (float64), run by the test."""
    with torch.no_grad():
        taps = _clf_taps(det, _images(images))
    fc = det.upstream.net.fc
    return (taps[det.upstream.penultimate].double().numpy(), fc.weight.detach().double().numpy(),
            fc.bias.detach().double().numpy())


@pytest.mark.parametrize("percentile", [90.0, 65.0])
def test_react(data, clf, percentile, tmp_path) -> None:
    det = _fit("react", data, upstream=clf.upstream, percentile=percentile)
    h_train, w, b = _features(det, data["x"])
    c = np.percentile(h_train, percentile)  # every activation of every training image
    h, _, _ = _features(det, data["eval"])
    want = -logsumexp(np.minimum(h, c) @ w.T + b, axis=1)
    np.testing.assert_allclose(det.score(data["eval"]), want, rtol=RTOL)
    assert np.any(h > c)  # the clip acts on these images
    np.testing.assert_array_equal(load(det.save(tmp_path / "react")).score(data["eval"]), det.score(data["eval"]))
