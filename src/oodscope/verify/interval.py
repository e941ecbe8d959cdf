"""Interval bound propagation (IBP; Gowal et al. 2018, "On the effectiveness of interval bound
propagation for training verifiably robust models", and the interval domain before it).

The input set is the box ``[max(x - ε, 0), min(x + ε, 1)]`` (the L∞ ball of radius ε inside the
pixel range). Each operation maps a box to a box containing its image:

* affine ``y = W x + b`` with centre ``c = (l + u) / 2`` and radius ``r = (u - l) / 2``:
  ``y ∈ [W c + b - |W| r, W c + b + |W| r]`` (exact for one affine map);
* ReLU and max pooling are monotone: ``[f(l), f(u)]``; flatten reshapes.

With ``rounding`` (the default) each affine box is widened by the bound of the float32 rounding of
that operation on its input box (:func:`oodscope.verify.rounding.affine_rounding`), so that the
boxes contain the values of the deployed float32 network, not only of the network in exact
arithmetic; ``rounding=False`` gives the exact-arithmetic boxes (the float64 copy of the weights).

:func:`interval_margins` bounds ``z_k - z_j`` below for the class ``k`` against every ``j``:
when the last operation is affine the difference is folded into it (``(e_k - e_j)^T W`` on the
box of its input, as Gowal et al. do with their specification matrix), which is never looser than
``lower(z_k) - upper(z_j)``; with ``rounding`` the bounds ``E_k + E_j`` of the float32 rounding
of the two logits are subtracted, so that the margin bounds the float32 logits; otherwise (a
network ending with ReLU, say) the latter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from oodscope.errors import InputError
from oodscope.verify.layers import DTYPE, Affine, Flatten, MaxPool, Op, Relu
from oodscope.verify.rounding import affine_rounding

Bounds = tuple[torch.Tensor, torch.Tensor]


def input_box(x: torch.Tensor, eps: float, clip: tuple[float, float] | None = (0.0, 1.0)) -> Bounds:
    """``[x - eps, x + eps]`` (float64) intersected with the pixel range ``clip`` (none: not clipped)."""
    if eps < 0:
        raise InputError(f"verify: eps must be >= 0, got {eps}")
    x = x.detach().to(DTYPE).cpu()
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = lo.clamp(clip[0], clip[1]), hi.clamp(clip[0], clip[1])
    return lo, hi


def interval_step(op: Op, lo: torch.Tensor, hi: torch.Tensor, rounding: bool = True) -> Bounds:
    """The box of ``op``'s output over the box ``[lo, hi]`` of its input (with ``rounding``: of the
    float32 op's output, on float32 inputs in the box)."""
    if isinstance(op, Affine):
        c, r = (lo + hi) / 2, (hi - lo) / 2
        c, r = op.forward(c), op.abs_linear(r)
        if rounding:
            r = r + affine_rounding(op, lo, hi)
        return c - r, c + r
    if isinstance(op, Relu):
        return lo.clamp_min(0.0), hi.clamp_min(0.0)
    if isinstance(op, MaxPool):
        return F.max_pool2d(lo, op.kernel, op.kernel), F.max_pool2d(hi, op.kernel, op.kernel)
    if isinstance(op, Flatten):
        return lo.flatten(1), hi.flatten(1)
    raise InputError(f"verify: no interval rule for {type(op).__name__}")


def interval_bounds(ops: Sequence[Op], lo: torch.Tensor, hi: torch.Tensor, rounding: bool = True) -> list[Bounds]:
    """Lower and upper bounds ``(N, *shape)`` of every op's output over the input box ``[lo, hi]`` (N, ...)
    (with ``rounding``: of the float32 network's values)."""
    out: list[Bounds] = []
    lo, hi = lo.to(DTYPE), hi.to(DTYPE)
    for op in ops:
        lo, hi = interval_step(op, lo, hi, rounding)
        out.append((lo, hi))
    return out


def margin_spec(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Rows ``e_k - e_j`` (N, K, K) for class ``k = labels[n]`` and every ``j`` (row ``k`` is zero)."""
    eye = torch.eye(classes, dtype=DTYPE)
    return eye[labels][:, None, :] - eye[None, :, :]


def interval_margins(ops: Sequence[Op], lo: torch.Tensor, hi: torch.Tensor, labels: torch.Tensor,
                     bounds: Sequence[Bounds] | None = None, rounding: bool = True) -> torch.Tensor:
    """Lower bounds (N, K) of ``z_k - z_j`` over the box, ``k = labels``; ``+inf`` at ``j = k``
    (with ``rounding``: of the float32 logits). ``bounds``: the per-op bounds to read (default:
    :func:`interval_bounds`; a tighter sound set, e.g. DeepPoly's, gives a tighter margin; they
    must include the rounding when ``rounding`` is on)."""
    if bounds is None:
        bounds = interval_bounds(ops, lo, hi, rounding)
    k = bounds[-1][0].shape[1]
    spec = margin_spec(labels, k)  # (N, K, K)
    last = ops[-1]
    if isinstance(last, Affine):
        l_in, u_in = (lo.to(DTYPE), hi.to(DTYPE)) if len(ops) == 1 else bounds[-2]
        n = spec.shape[0]
        coef = last.transpose(spec.reshape(n * k, k), tuple(l_in.shape[1:])).reshape(n, k, -1)
        const = last.bias_term(spec.reshape(n * k, k)).reshape(n, k)
        low = const + (coef.clamp_min(0) * l_in.flatten(1)[:, None]).sum(2) + (coef.clamp_max(0) * u_in.flatten(1)[:, None]).sum(2)
        if rounding:  # z_k and z_j are each within E of the exact logits
            low = low - (spec.abs() * affine_rounding(last, l_in, u_in).flatten(1)[:, None, :]).sum(2)
    else:
        l_out, u_out = bounds[-1]
        low = l_out.gather(1, labels[:, None]) - u_out
    return low.masked_fill(spec.abs().sum(2) == 0, float("inf"))
