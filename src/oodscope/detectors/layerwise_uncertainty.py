"""Layerwise uncertainty ("Out-of-distribution detection using layerwise uncertainty in deep neural
networks", ICLR 2020 submission, OpenReview rklVOnNtwH, anonymous authors; code linked there:
github.com/unknown-ai/UFEL. The method is called UFEL, uncertainty of features extracted in each
layer).

The paper's idea: a classifier whose features are stochastic, each layer's output drawn with the
reparameterization trick, gives an uncertainty of the features of every layer; these
uncertainties, combined, separate out-of-distribution inputs from ambiguous in-distribution ones
(near a decision boundary), which the output layer's confidence alone confuses.

Our implementation (the paper's details are not followed exactly; what follows is ours):

* Network: the classifier's architecture (``arch``). After each of its taps z_l (LeNet: the two
  conv blocks' maps z1, z2 and the hidden vector z3; residual networks: the three groups' maps
  z1..z3 and the pooled vector z4) a branch predicts a log-variance of the same shape,
  v_l(x) = log sigma_l^2(x): a 1x1 convolution for a feature map (one value per channel and
  position), a linear layer for a vector. The branches start at v = 0 (zero weights and biases);
  v is clamped to [-15, 15] for numerical safety.
* Training: the features passed on to the next layer are z_l + sigma_l * eps, eps ~ N(0, I) drawn
  anew per image and element (the reparameterization trick); the loss is

      L = mean_i [ -log softmax_{y_i}(f(x_i)) ] + beta * sum_l mean_{elements} KL_l,

  beta = ``kl_weight``, the mean taken over the images of the batch and the elements (channels and
  positions) of the tap, and KL_l as ``kl_prior`` says:

      "standard" (default): KL( N(z_l, sigma_l^2) || N(0, 1) ) = 1/2 (sigma_l^2 + z_l^2 - 1 - log sigma_l^2),
      "same-mean":          KL( N(z_l, sigma_l^2) || N(z_l, 1) ) = 1/2 (sigma_l^2 - 1 - log sigma_l^2).

  Both grow without bound as sigma -> 0, so the cross-entropy alone cannot shrink the noise
  everywhere: it is kept small only on the features the classification needs, which is where the
  uncertainty carries information. "standard" is the variational-information-bottleneck prior
  (Alemi et al., ICLR 2017) of each layer; it also keeps the features from growing until a noise
  of variance 1 no longer matters, which "same-mean" allows. On scikit-learn's digits (0-4 in,
  5-9 out, demo preset) the penultimate layer's u_l alone gave an AUROC of 0.85-0.90 with
  "standard" against 0.53-0.59 with "same-mean" (beta 0.01 and 0.1), hence the default; beta = 0.1
  (default) gave 0.90 for the combined score and 95.7 % accuracy, beta = 0.01 0.84 and 94.0 %.
  On split-mnist (seed 0, cpu preset, one epoch): AUROC 92.0 % with ``combine`` "sum", 97.2 %
  with "last", 83.7 % with "same-mean"; msp on the same classifier settings 95.3 %.
  ``combine`` "last" became the default after seeds 0-2 of both multi-class MNIST protocols (5
  epochs, docs/lab/BENCHMARKS.md): the early layers' terms add more noise than information there.
* Scoring: no noise (z_l is passed on as is). The uncertainty of layer l is
  u_l(x) = mean over the elements (channels, and positions of a map) of v_l(x); one more term is
  the predictive entropy H(x) = -sum_k p_k log p_k of the softmax of the logits. Each term t is
  standardised, (t(x) - m_t) / s_t, with the mean m_t and standard deviation s_t over held-out
  in-distribution images: the validation images when given to ``fit``, else 1000 training images
  drawn with the seed. ``combine``: "last" (default) takes only the penultimate layer's u_l,
  "sum" adds the standardised u_l of all layers (the paper's combination; the ``paper`` preset),
  "max" the largest of them; with ``with_entropy``
  (default) the standardised entropy is one more term of the sum (or the max). Higher = more
  uncertain = more out-of-distribution. The constants m and s are saved with the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodscope.detectors.base import FitData
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS
from oodscope.model_files import load_modules
from oodscope.detectors.registry import register
from oodscope.detectors.trained_clf import Taps, TrainedClassifierDetector
from oodscope.training.core import batches, merge_presets
from oodscope.errors import InputError, ModelFileError
from oodscope.nets import LeNet
from oodscope.nets.backbone import Backbone

LAYERWISE_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "kl_weight": 0.1, "kl_prior": "standard",
                                      "combine": "last", "with_entropy": True}
LAYERWISE_CHOICES: dict[str, tuple[Any, ...]] = {**TrainedClassifierDetector.choices, "combine": ("sum", "last", "max"),
                                               "kl_prior": ("standard", "same-mean")}

STATS = "stats"  # prefix of the standardisation constants in a saved model
STAT_IMAGES = 1000  # training images the constants come from when no validation images are given
LOGVAR_RANGE = (-15.0, 15.0)
ENTROPY = "entropy"

Stage = Callable[[torch.Tensor], torch.Tensor]


def stages(net: nn.Module) -> tuple[list[tuple[str, Stage]], Stage]:
    """The network's layers one by one: (tap name, the function from the previous tap to it), and
    the last linear layer; running them in turn gives ``net.taps``."""
    if isinstance(net, LeNet):
        return [("z1", net.block1), ("z2", net.block2), ("z3", net.hidden)], net.fc
    if isinstance(net, Backbone):
        return [("z1", lambda x: net.group1(net.stem(x))), ("z2", net.group2),
                ("z3", lambda x: torch.relu(net.bn(net.group3(x)))), ("z4", lambda x: x.mean(dim=(2, 3)))], net.fc
    raise InputError(f"layerwise-uncertainty: no layer-by-layer forward pass for {type(net).__name__}")


def kl_term(z: torch.Tensor, log_var: torch.Tensor, prior: str) -> torch.Tensor:
    """Elementwise KL( N(z, sigma^2) || N(0, 1) ) = 1/2 (sigma^2 + z^2 - 1 - log sigma^2) (``prior``
    "standard") or KL( N(z, sigma^2) || N(z, 1) ) = 1/2 (sigma^2 - 1 - log sigma^2) ("same-mean")."""
    kl = 0.5 * (torch.exp(log_var) - 1.0 - log_var)
    return kl + 0.5 * z.pow(2) if prior == "standard" else kl


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per row: logsumexp(l) - sum_k p_k l_k."""
    logits = logits.double()
    return torch.logsumexp(logits, dim=1) - (torch.softmax(logits, dim=1) * logits).sum(dim=1)


def _branch(shape: tuple[int, ...]) -> nn.Module:
    m = nn.Conv2d(shape[0], shape[0], 1) if len(shape) == 3 else nn.Linear(shape[0], shape[0])
    nn.init.zeros_(m.weight)
    nn.init.zeros_(m.bias)
    return m


@register
class LayerwiseUncertaintyDetector(TrainedClassifierDetector):
    method = "layerwise-uncertainty"
    paper = ('anonymous, "Out-of-distribution detection using layerwise uncertainty in deep neural networks" '
             '(UFEL), ICLR 2020 submission')
    help = {
        "kl_weight": "beta: weight of the per-layer KL terms beside the cross-entropy",
        "kl_prior": '"standard": KL to N(0, 1) (an information bottleneck); "same-mean": KL to N(z_l, 1)',
        "combine": "last: the penultimate layer's uncertainty alone; sum: all layers' (the paper's); max: their largest",
        "with_entropy": "add the standardised predictive entropy as one more term",
    }
    defaults = LAYERWISE_DEFAULTS
    presets = merge_presets(CLASSIFIER_PRESETS, {"paper": {"combine": "sum"}})
    choices = LAYERWISE_CHOICES
    order = 65

    def _check_config(self) -> None:
        if self.config["kl_weight"] < 0:
            raise InputError(f"layerwise-uncertainty: kl_weight must be >= 0, got {self.config['kl_weight']}")

    @property
    def layers(self) -> list[str]:
        """Names of the taps with a log-variance branch, in network order."""
        return [k for k in self.tap_shapes if k != "logits"]

    @property
    def terms(self) -> list[str]:
        """Names of the score's terms, in the order of the standardisation constants."""
        return [*self.layers, ENTROPY]

    def _head(self) -> nn.Module:
        stages(self.net)  # refuses an architecture without a layer-by-layer pass
        self.stat_mean = torch.zeros(len(self.terms), dtype=torch.float64)
        self.stat_std = torch.ones(len(self.terms), dtype=torch.float64)
        return nn.ModuleDict({name: _branch(self.tap_shapes[name]) for name in self.layers})

    def forward(self, xb: torch.Tensor) -> Taps:
        """The taps z_l, their log-variances ``logvar_<tap>`` and the logits; in training mode each
        z_l is perturbed (z_l + sigma_l * eps) before the next layer."""
        layers, last = stages(self.net)
        noisy, out, h = self.net.training, {}, xb
        for name, f in layers:
            z = f(h)
            log_var = self.head[name](z).clamp(*LOGVAR_RANGE)
            out[name], out[f"logvar_{name}"] = z, log_var
            h = z + torch.exp(0.5 * log_var) * torch.randn_like(z) if noisy else z
        out["logits"] = last(h)
        return out

    def loss(self, taps: Taps, labels: torch.Tensor, outlier_taps: Taps | None) -> torch.Tensor:
        prior = self.config["kl_prior"]
        kl = sum(kl_term(taps[name], taps[f"logvar_{name}"], prior).mean() for name in self.layers)
        return F.cross_entropy(taps["logits"], labels) + float(self.config["kl_weight"]) * kl

    def raw_terms(self, taps: Taps) -> torch.Tensor:
        """(N, T) float64: u_l (mean log-variance) of each layer, then the predictive entropy."""
        u = [taps[f"logvar_{name}"].double().flatten(1).mean(dim=1) for name in self.layers]
        return torch.stack([*u, entropy(taps["logits"])], dim=1)

    def combined(self, standardised: torch.Tensor) -> torch.Tensor:
        """The score from the standardised terms (N, T) as ``combine`` and ``with_entropy`` say."""
        c = self.config
        cols = [self.layers.index(self.penultimate)] if c["combine"] == "last" else list(range(len(self.layers)))
        if c["with_entropy"]:
            cols.append(len(self.layers))
        picked = standardised[:, cols]
        return picked.max(dim=1).values if c["combine"] == "max" else picked.sum(dim=1)

    def score_of(self, taps: Taps) -> torch.Tensor:
        t = self.raw_terms(taps)
        return self.combined((t - self.stat_mean.to(t.device)) / self.stat_std.to(t.device))

    def _after_fit(self, data: FitData) -> None:
        x = data.validation
        if x is None:
            g = torch.Generator().manual_seed(int(self.config["seed"]))
            x = data.x[torch.randperm(data.x.shape[0], generator=g)[:STAT_IMAGES]]
        rows = []
        with torch.no_grad():
            for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
                rows.append(self.raw_terms(self.taps(x[idx])).cpu())
        t = torch.cat(rows)
        self.stat_mean = t.mean(dim=0)
        self.stat_std = t.std(dim=0, unbiased=False).clamp_min(1e-8) if t.shape[0] > 1 else torch.ones(t.shape[1], dtype=torch.float64)
        self.fitted["terms"] = self.terms

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"{STATS}.mean": self.stat_mean, f"{STATS}.std": self.stat_std}

    def _restore(self, weights: dict[str, torch.Tensor], path: str) -> None:
        load_modules(self.all_modules(), weights, path, extra=(STATS,))
        mean, std = weights.get(f"{STATS}.mean"), weights.get(f"{STATS}.std")
        stray = sorted(k for k in weights if k.startswith(f"{STATS}.") and k not in (f"{STATS}.mean", f"{STATS}.std"))
        n = len(self.terms)
        if mean is None or std is None or stray or tuple(mean.shape) != (n,) or tuple(std.shape) != (n,):
            raise ModelFileError(f"{path}: expected the tensors {STATS}.mean and {STATS}.std of {n} values "
                                 f"(the standardisation constants of {', '.join(self.terms)})")
        if not bool(torch.isfinite(mean).all() and (std > 0).all()):
            raise ModelFileError(f"{path}: the standardisation constants are not finite and positive")
        self.stat_mean, self.stat_std = mean.double(), std.double()
