"""Robustness certificates: does the class stay the same on the whole L∞ ball?

For an image ``x`` and radius ``ε`` the region is every ``x'`` with ``‖x' - x‖∞ <= ε`` inside the
pixel range [0, 1]. With ``k`` the class (the network's arg-max at ``x``, or the given label),
the certificate is a lower bound ``m`` of ``min_{x'} min_{j ≠ k} (z_k(x') - z_j(x'))`` where
``z`` are the logits of the deployed network: the classifier scoring in float32
(``Classifier.logits`` with ``precision="float32"``) on any float32 image ``x'`` of the region.
The image is certified when ``m > TOLERANCE`` (``1e-9``, a cushion for the verifier's own float64
rounding), so the float32 arg-max provably stays ``k`` on the region (strictly larger than every
other logit: no tie). An image whose arg-max at ``x`` differs from the given label is never
certified.

The bounds are computed in float64 on the float32 weights, and every affine operation (the input
normalisation, each convolution and linear layer) adds a rigorous bound of its float32 rounding
error on its input box (:mod:`oodscope.verify.rounding`: ``γ_{n+1} (|w|·|x| + |b|)`` per neuron,
Higham 2002, times 1 + 2^-10 for the verifiers' own float64 rounding), so the region's bounds
contain the float32 network's values at every layer and the margin is that of the float32 logits.
``rounding=False`` bounds the network in exact arithmetic instead (the float64 copy: the behaviour
before these bounds, which a float32 forward pass can contradict near the decision boundary; kept
for comparison and tests). Models that score in bfloat16 are refused
(:func:`oodscope.verify.rounding.require_float32`): their rounding (up to ~1e-1 on the logits) is
not bounded here.

``method``: ``"interval"`` (:mod:`oodscope.verify.interval`, Gowal et al. 2018; the difference
``z_k - z_j`` folded into the last affine layer) or ``"deeppoly"`` (:mod:`oodscope.verify.deeppoly`,
Singh et al. 2019; the difference back-substituted from the output through every layer). The
DeepPoly margin is, per ``j``, the larger of the back-substituted bound and the folded interval
bound on DeepPoly's layer bounds (both sound), so it is never looser than the interval method.

:func:`certify_box` certifies an arbitrary input box ``[lower, upper]`` instead of a ball (the
region of the geometric certificates, :mod:`oodscope.verify.geometric`).
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
from oodscope.verify.layers import DTYPE, Op, as_layers, forward
from oodscope.verify.rounding import require_float32

METHODS = ("deeppoly", "interval")
TOLERANCE = 1e-9  # the margin's lower bound must exceed this (the verifier's own float64 rounding)


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


def verified_layers(model: Any) -> list[Op]:
    """The ops of ``model`` (:func:`oodscope.verify.as_layers`) after refusing a model that does
    not score in float32 (:func:`oodscope.verify.rounding.require_float32`)."""
    require_float32(model)
    return as_layers(model)


def certify(model: Any, x: torch.Tensor, eps: float, method: str = "deeppoly", label: torch.Tensor | None = None,
            clip: tuple[float, float] | None = (0.0, 1.0), budget: int = BUDGET, rounding: bool = True) -> CertResult:
    """Certificates of images ``x`` (N, C, H, W) in [0, 1] at L∞ radius ``eps``.

    ``model``: a Classifier (refused unless it scores in float32), an ``nn.Module`` (no
    normalisation) or a list of verify ops (:func:`oodscope.verify.as_layers`), taken as float32
    networks. ``label``: the classes to certify (N,); default the network's predictions. ``clip``:
    the valid input range (``None``: the ball is not clipped). ``rounding``: include the float32
    rounding of the network (the default; ``False``: exact arithmetic, see the module's docstring).
    """
    if method not in METHODS:
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    ops = verified_layers(model)
    if not torch.is_tensor(x) or x.ndim < 2 or x.shape[0] == 0:
        raise InputError("verify: x must be a non-empty batch tensor (N, ...)")
    if bool(torch.isnan(x).any()):
        raise InputError("verify: x holds NaN")
    x = x.detach().to(DTYPE).cpu()
    top, k = predicted_classes(ops, x, label)
    with torch.no_grad():
        lo, hi = input_box(x, eps, clip)
        margin, seconds = box_margins(ops, lo, hi, k, method, budget, rounding)
    correct = top == k
    return CertResult(method, float(eps), k, (margin > TOLERANCE) & correct, margin, correct, seconds,
                      {"rounding": rounding})


def predicted_classes(ops: Sequence[Op], x: torch.Tensor, label: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's arg-max at ``x`` (N,) and the classes to certify: ``label`` (N,) or that arg-max.

    Raises:
        InputError: the network does not end in flat logits, or the labels do not match the images.
    """
    with torch.no_grad():
        logits = forward(ops, x)
    if logits.ndim != 2:
        raise InputError(f"verify: the network's output must be flat logits (N, K), got shape {tuple(logits.shape)}")
    top = logits.argmax(dim=1)
    k = top if label is None else torch.as_tensor(label).long().flatten().cpu()
    if k.shape != top.shape:
        raise InputError(f"verify: {x.shape[0]} images but {k.numel()} labels")
    return top, k


def box_margins(ops: Sequence[Op], lo: torch.Tensor, hi: torch.Tensor, labels: torch.Tensor, method: str = "deeppoly",
                budget: int = BUDGET, rounding: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower bounds (N,) of ``min_{j≠k} z_k - z_j`` over each input box ``[lo[n], hi[n]]`` (float64,
    ``lo <= hi``) for the class ``k = labels[n]`` (with ``rounding``: of the float32 logits), and
    the seconds (N,) each took; the bound that :func:`certify` and :func:`certify_box` compare with
    ``TOLERANCE``."""
    if method not in METHODS:
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    margins, seconds = [], []
    with torch.no_grad():
        for n in range(lo.shape[0]):
            start = time.perf_counter()
            sl = slice(n, n + 1)
            if method == "interval":
                m = interval_margins(ops, lo[sl], hi[sl], labels[sl], rounding=rounding)
            else:
                dp = DeepPoly(ops, lo[sl], hi[sl], intersect=True, budget=budget, rounding=rounding)
                m = torch.maximum(deeppoly_margins(ops, lo[sl], hi[sl], labels[sl], states=[dp]),
                                  interval_margins(ops, lo[sl], hi[sl], labels[sl], bounds=dp.bounds[1:], rounding=rounding))
            margins.append(m.min(dim=1).values)
            seconds.append(time.perf_counter() - start)
    return torch.cat(margins), torch.tensor(seconds, dtype=torch.float64)


def certify_box(model: Any, lower: torch.Tensor, upper: torch.Tensor, method: str = "deeppoly",
                label: torch.Tensor | None = None, center: torch.Tensor | None = None, budget: int = BUDGET,
                rounding: bool = True) -> CertResult:
    """Certificates of arbitrary input boxes: for each ``n``, is the class of the float32 network
    the same for every float32 input in ``[lower[n], upper[n]]`` (N, C, H, W)? The box is taken as
    given (not clipped); ``rounding`` as in :func:`certify`.

    ``center``: the reference inputs (N, ...) whose arg-max is the ``predicted`` class when no
    ``label`` is given and against which ``correct`` is checked (default: the boxes' centres); it
    should lie in its box. ``eps`` of the result is NaN (the region is no ball).
    """
    if method not in METHODS:
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    ops = verified_layers(model)
    if not (torch.is_tensor(lower) and torch.is_tensor(upper)) or lower.shape != upper.shape or lower.ndim < 2 \
            or lower.shape[0] == 0:
        raise InputError("verify: lower and upper must be non-empty batch tensors (N, ...) of the same shape")
    lo, hi = lower.detach().to(DTYPE).cpu(), upper.detach().to(DTYPE).cpu()
    if bool(torch.isnan(lo).any() | torch.isnan(hi).any()):
        raise InputError("verify: the box holds NaN")
    if bool((lo > hi).any()):
        raise InputError("verify: the box has lower > upper")
    ref = (lo + hi) / 2 if center is None else center.detach().to(DTYPE).cpu()
    if ref.shape != lo.shape:
        raise InputError(f"verify: center of shape {tuple(ref.shape)} for boxes of shape {tuple(lo.shape)}")
    top, k = predicted_classes(ops, ref, label)
    with torch.no_grad():
        margin, seconds = box_margins(ops, lo, hi, k, method, budget, rounding)
    correct = top == k
    return CertResult(method, float("nan"), k, (margin > TOLERANCE) & correct, margin, correct, seconds,
                      {"region": "box", "rounding": rounding})


def layer_bounds(model: Any, x: torch.Tensor, eps: float, method: str = "deeppoly", intersect: bool = True,
                 clip: tuple[float, float] | None = (0.0, 1.0), rounding: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Bounds ``(N, *shape)`` of every operation's output of ``model`` over the region of each image
    (with ``rounding``: of the float32 network's values)."""
    ops = as_layers(model)
    lo, hi = input_box(x, eps, clip)
    if method == "interval":
        return interval_bounds(ops, lo, hi, rounding)
    if method != "deeppoly":
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    return deeppoly_bounds(ops, lo, hi, intersect, rounding=rounding)


def certified_share(model: Any, x: torch.Tensor, epsilons: Sequence[float], method: str = "deeppoly",
                    label: torch.Tensor | None = None) -> dict[float, float]:
    """Share of the images certified at each radius."""
    return {float(e): certify(model, x, e, method, label).share for e in epsilons}
