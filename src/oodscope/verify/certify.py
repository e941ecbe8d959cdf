"""Robustness certificates: does the class stay the same on the whole L∞ ball?

For an image ``x`` and radius ``ε`` the region is every ``x'`` with ``‖x' - x‖∞ <= ε`` inside the
pixel range [0, 1]. With ``k`` the class (the network's arg-max at ``x``, or the given label),
the certificate is a lower bound ``m`` of ``min_{x'} min_{j ≠ k} (z_k(x') - z_j(x'))``; the image
is certified when ``m > 0`` (with a margin of ``TOLERANCE`` for float64 rounding), so the
prediction provably stays ``k`` on the region. An image whose arg-max at ``x`` differs from the
given label is never certified. The bounds are computed in float64 on the float32 weights (the
network is verified in exact arithmetic on those weights; the float32 / bfloat16 forward pass of
the classifier itself rounds differently, by far less than typical margins).

``method``: ``"interval"`` (:mod:`oodscope.verify.interval`, Gowal et al. 2018; the difference
``z_k - z_j`` folded into the last affine layer) or ``"deeppoly"`` (:mod:`oodscope.verify.deeppoly`,
Singh et al. 2019; the difference back-substituted from the output through every layer). The
DeepPoly margin is, per ``j``, the larger of the back-substituted bound and the folded interval
bound on DeepPoly's layer bounds (both sound), so it is never looser than the interval method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from oodscope.errors import InputError
from oodscope.verify.deeppoly import BUDGET, DeepPoly, deeppoly_bounds, deeppoly_margins
from oodscope.verify.interval import input_box, interval_bounds, interval_margins
from oodscope.verify.layers import DTYPE, as_layers, forward

METHODS = ("deeppoly", "interval")
TOLERANCE = 1e-9


@dataclass
class CertResult:
    """Per image: ``predicted`` class (N,), ``certified`` (N,) bool, ``margin`` (N,) the lower bound
    of ``min_{j≠k} z_k - z_j`` over the region, ``correct`` (N,) whether the arg-max at ``x`` is the
    class (always true without labels), ``seconds`` (N,) spent per certificate."""

    method: str
    eps: float
    predicted: torch.Tensor
    certified: torch.Tensor
    margin: torch.Tensor
    correct: torch.Tensor
    seconds: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def share(self) -> float:
        """Share of the images certified (in [0, 1])."""
        return float(self.certified.double().mean()) if self.certified.numel() else 0.0

    @property
    def seconds_per_certificate(self) -> float:
        return float(self.seconds.mean()) if self.seconds.numel() else 0.0


def certify(model: Any, x: torch.Tensor, eps: float, method: str = "deeppoly", label: torch.Tensor | None = None,
            clip: tuple[float, float] | None = (0.0, 1.0), budget: int = BUDGET) -> CertResult:
    """Certificates of images ``x`` (N, C, H, W) in [0, 1] at L∞ radius ``eps``.

    ``model``: a Classifier, an ``nn.Module`` (no normalisation) or a list of verify ops
    (:func:`oodscope.verify.as_layers`). ``label``: the classes to certify (N,); default the
    network's predictions. ``clip``: the valid input range (``None``: the ball is not clipped).
    """
    if method not in METHODS:
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    ops = as_layers(model)
    if not torch.is_tensor(x) or x.ndim < 2 or x.shape[0] == 0:
        raise InputError("verify: x must be a non-empty batch tensor (N, ...)")
    if bool(torch.isnan(x).any()):
        raise InputError("verify: x holds NaN")
    x = x.detach().to(DTYPE).cpu()
    with torch.no_grad():
        logits = forward(ops, x)
        if logits.ndim != 2:
            raise InputError(f"verify: the network's output must be flat logits (N, K), got shape {tuple(logits.shape)}")
        top = logits.argmax(dim=1)
        k = top if label is None else torch.as_tensor(label).long().flatten().cpu()
        if k.shape != top.shape:
            raise InputError(f"verify: {x.shape[0]} images but {k.numel()} labels")
        lo, hi = input_box(x, eps, clip)
        margins, seconds = [], []
        for n in range(x.shape[0]):
            start = time.perf_counter()
            sl = slice(n, n + 1)
            if method == "interval":
                m = interval_margins(ops, lo[sl], hi[sl], k[sl])
            else:
                dp = DeepPoly(ops, lo[sl], hi[sl], intersect=True, budget=budget)
                m = torch.maximum(deeppoly_margins(ops, lo[sl], hi[sl], k[sl], states=[dp]),
                                  interval_margins(ops, lo[sl], hi[sl], k[sl], bounds=dp.bounds[1:]))
            margins.append(m.min(dim=1).values)
            seconds.append(time.perf_counter() - start)
    margin = torch.cat(margins)
    correct = top == k
    return CertResult(method, float(eps), k, (margin > TOLERANCE) & correct, margin, correct,
                      torch.tensor(seconds, dtype=torch.float64))


def layer_bounds(model: Any, x: torch.Tensor, eps: float, method: str = "deeppoly", intersect: bool = True,
                 clip: tuple[float, float] | None = (0.0, 1.0)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Bounds (N, *shape) of every operation's output of ``model`` over the region of each image."""
    ops = as_layers(model)
    lo, hi = input_box(x, eps, clip)
    if method == "interval":
        return interval_bounds(ops, lo, hi)
    if method != "deeppoly":
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    return deeppoly_bounds(ops, lo, hi, intersect)


def certified_share(model: Any, x: torch.Tensor, epsilons: Sequence[float], method: str = "deeppoly",
                    label: torch.Tensor | None = None) -> dict[float, float]:
    """Share of the images certified at each radius."""
    return {float(e): certify(model, x, e, method, label).share for e in epsilons}
