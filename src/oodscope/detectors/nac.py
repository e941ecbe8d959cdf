"""NAC-UE: neuron activation coverage for uncertainty estimation (Liu, Tian, Li, Ma & Wang, "Neuron
activation coverage: rethinking out-of-distribution detection and generalization", ICLR 2024).

Each neuron of a layer gets a state that combines its output and its influence on the decision,
the gradient of the KL divergence from the uniform distribution u to the softmax p of the logits:

    s_i(x) = sigmoid(alpha h_i(x) g_i(x)),   g = dD_KL(u || p(x)) / dh = W^T (p - u),

here on the penultimate features h (:mod:`~oodscope.detectors.penultimate`; logits z = W h + b,
T = 1), whose KL gradient has this closed form (no back-propagation). On ``fit_samples`` training
images the states of each neuron are counted in the intervals [e_j, e_{j+1}) of M thresholds
e_0 = 0 < ... < e_{M-1} (a histogram of the neuron's state density); a neuron's coverage of a state
in interval j is min(count_j / r, 1) (an interval met by r or more training images is fully
covered), and

    NAC(x) = (1/D) sum_i min(count_{j_i(x), i} / r, 1),   s(x) = -NAC(x),   higher = more out-of-distribution.

As the authors' code (``coverage.py``), the thresholds are not evenly spaced: with base 1000 and
M/2 points x evenly spaced in [1, sqrt(1000)], the lower half is log_1000(x) (from 0 to 0.5,
denser towards 0.5), the upper half its mirror 1 - log_1000(x); the last threshold is raised to
1.01 and a final 1.2 appended, so M (even) thresholds give M - 1 intervals, the last of which no
state reaches; r counts training images (not a density).

Defaults: the authors' settings for the penultimate layer (``avgpool``) of ResNet-18 on CIFAR-10,
M = 50, r = 50, alpha = 100, on 1000 training images (``valid_num``); the authors chose them by
searching on OOD validation data (their "aps" mode; CIFAR-100: alpha = 50; ImageNet: r = 10,
alpha = 3000). Simplifications: the penultimate layer only (the authors' best results average
this score over four layers, each with its own M, r and alpha); the 1000 images are a uniform
draw (``seed``), not balanced per class as theirs. The neuron coverage of
:mod:`oodscope.verify.coverage` (DeepXplore's: was a ReLU above a threshold for some input) is a
different quantity and is not reused.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from oodscope.detectors.penultimate import PENULTIMATE_DEFAULTS, PenultimateDetector
from oodscope.detectors.registry import register
from oodscope.errors import InputError


def thresholds(m: int, base: float = 1e3) -> np.ndarray:
    """The authors' M thresholds of the state intervals (M even, >= 4)."""
    lower = np.log(np.linspace(1.0, np.sqrt(base), m // 2)) / np.log(base)
    edges = np.concatenate([lower[:-1], (1.0 - lower)[::-1]])
    edges[-1] += 1e-2
    return np.append(edges, 1.2)


@register
class NACDetector(PenultimateDetector):
    method = "nac"
    paper = ('Liu, Tian, Li, Ma & Wang, "Neuron activation coverage: rethinking out-of-distribution detection and '
             'generalization", ICLR 2024')
    help = {
        "fit_samples": "training images whose neuron states are counted, drawn with seed (the authors: 1000)",
        "m": "M: thresholds of each neuron's state histogram, even; M - 1 intervals (the authors: 50)",
        "r": "r: the count at which an interval is fully covered (the authors: 50)",
        "alpha": "alpha: steepness of the neuron state sigmoid(alpha h g) (the authors: 100)",
    }
    defaults: dict[str, Any] = {**PENULTIMATE_DEFAULTS, "fit_samples": 1000, "m": 50, "r": 50.0, "alpha": 100.0}
    order = 85
    state: ClassVar[tuple[str, ...]] = ("edges", "counts")
    exportable = False  # its interval lookup (torch.searchsorted) has no ONNX operator at opset 17

    def _check_config(self) -> None:
        super()._check_config()
        m = int(self.config["m"])
        if m < 4 or m % 2:
            raise InputError(f"{self.method}: m (the number of thresholds) must be even and >= 4, got {m}")
        for key in ("r", "alpha"):
            if not float(self.config[key]) > 0:
                raise InputError(f"{self.method}: {key} must be positive, got {self.config[key]}")

    def states(self, h: torch.Tensor) -> torch.Tensor:
        """Neuron states sigmoid(alpha h * W^T (p - u)) of float64 features ``h`` (n, D)."""
        w, b = self.head_parameters()
        p = torch.softmax(h @ w.T + b, dim=1)
        return torch.sigmoid(float(self.config["alpha"]) * h * ((p - 1.0 / w.shape[0]) @ w))

    def intervals(self, s: torch.Tensor) -> torch.Tensor:
        """Index j of the interval [e_j, e_{j+1}) of each state; -1 outside them all."""
        j = torch.searchsorted(self.edges, s.contiguous(), right=True) - 1
        return torch.where(j < len(self.edges) - 1, j, torch.full_like(j, -1))

    def fit_features(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.edges = torch.from_numpy(thresholds(int(self.config["m"])))
        j = self.intervals(self.states(features.double()))
        d, bins = features.shape[1], len(self.edges) - 1
        flat = (j * d + torch.arange(d))[j >= 0]
        self.counts = torch.bincount(flat, minlength=bins * d).view(bins, d).double()

    def feature_score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        j = self.intervals(self.states(features.double()))
        cover = (self.counts / float(self.config["r"])).clamp(max=1.0)
        got = cover[j.clamp(min=0), torch.arange(features.shape[1])]
        return -torch.where(j >= 0, got, torch.zeros_like(got)).mean(dim=1)
