"""DeepPoly: back-substituted linear bounds (Singh, Gehr, Püschel & Vechev, "An abstract domain for
certifying neural networks", POPL 2019).

Every neuron ``y`` gets a symbolic lower and upper bound, linear in the neurons of the layer before
it, and concrete bounds ``[l, u]``:

* affine layers: ``W x + b - E <= y <= W x + b + E`` with ``E`` the bound of the float32
  rounding of the layer on the concrete bounds of its input (``rounding``, the default:
  :func:`oodscope.verify.rounding.affine_rounding`; the neurons' values are those of the deployed
  float32 network) or ``E = 0`` (``rounding=False``: the network in exact arithmetic);
* ReLU ``y = max(x, 0)`` with input bounds ``[l, u]``: ``y = x`` when ``l >= 0``, ``y = 0`` when
  ``u <= 0``; otherwise (unstable) the upper bound is the line through ``(l, 0)`` and ``(u, u)``,
  ``y <= u (x - l) / (u - l)``, and the lower bound ``y >= λ x`` with ``λ = 1`` when ``u > -l``
  and ``λ = 0`` otherwise (the smaller area, as in the paper). Concrete: ``[max(l, 0), max(u, 0)]``;
* max pooling ``y = max_i x_i`` over a window (the usual DeepPoly max-pool rule): let ``i*``
  be the input with the largest lower bound. If ``l_{i*} >= u_j`` for every other ``j`` the output
  is ``x_{i*}`` (exact); otherwise ``x_{i*} <= y <= max_i u_i`` (a constant upper bound).
  Concrete: ``[max_i l_i, max_i u_i]``;
* flatten reshapes.

The concrete bounds of an affine layer's neurons come from back-substitution: the identity on those
neurons is carried back, layer by layer, to the input box, choosing for each coefficient the lower or
upper symbolic bound by its sign (an affine layer's slack ``E`` adds ``-|a|·E`` to the constant); at
the input, ``min_{x ∈ box} a^T x + c = a⁺·lo + a⁻·hi + c``.
An upper bound is minus the lower bound of the negated expression, so one routine computes both.
Coefficients stay tensors shaped like the layer they sit on: a convolution takes them back with
``conv_transpose2d``, a linear layer with its transposed weight, max pooling by scattering to the
chosen inputs; no dense convolution matrix is built. The neurons of a feature map are queried a
tile of positions at a time, and their coefficients live on a window of each earlier feature map
(the tile's receptive field) rather than on the whole map; the neurons of a flat layer are queried
in chunks within a memory budget. Images are processed one at a time.

With ``intersect`` (the default) each affine layer's bounds are intersected with the interval
bounds computed from the (already intersected) bounds of the layer before (widened by the same
rounding bound), which keeps them sound and
never looser than interval bound propagation at any layer; neurons feeding a ReLU that this interval
step already proves inactive are not back-substituted (their output is exactly 0). Without it the
bounds are DeepPoly's own (they can in principle be looser than intervals for single neurons:
``y >= x`` for an unstable ReLU gives ``l < 0`` where the interval gives 0, before the
back-substitution's cancellations; on the tested networks the final margins never were). :func:`deeppoly_margins` back-substitutes the differences ``z_k - z_j``
from the output (the rows ``e_k - e_j`` folded into the last layer), not differences of separate
bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from oodscope.errors import InputError
from oodscope.verify.interval import Bounds, interval_step, margin_spec
from oodscope.verify.layers import DTYPE, Affine, Flatten, MaxPool, Op, Relu, Window, shapes
from oodscope.verify.rounding import affine_rounding

BUDGET = 1 << 22  # elements of one coefficient tensor on a flat layer's whole input (float64: 32 MiB)
TILE_QUERIES = 32  # neurons of a feature map back-substituted together, at least (a tile of positions x channels)


@dataclass
class ReluRelax:
    """``lam * x <= y <= up * x + shift`` per neuron (shape ``(1, *shape)``)."""

    lam: torch.Tensor
    up: torch.Tensor
    shift: torch.Tensor


@dataclass
class PoolRelax:
    """``x[rows, cols] <= y``; ``y <= x[rows, cols]`` where ``exact``, else ``y <= top``."""

    rows: torch.Tensor  # (1, C, Ho, Wo) row and column of the chosen input
    cols: torch.Tensor
    exact: torch.Tensor  # (1, C, Ho, Wo) bool
    top: torch.Tensor  # (1, C, Ho, Wo)


def relu_relax(lo: torch.Tensor, hi: torch.Tensor) -> ReluRelax:
    """The DeepPoly ReLU relaxation for input bounds ``[lo, hi]``."""
    active, unstable = lo >= 0, (lo < 0) & (hi > 0)
    width = torch.where(unstable, hi - lo, torch.ones_like(hi))
    up = torch.where(active, 1.0, torch.where(unstable, hi / width, 0.0)).to(DTYPE)
    shift = torch.where(unstable, -up * lo, 0.0).to(DTYPE)
    lam = torch.where(active | (unstable & (hi > -lo)), 1.0, 0.0).to(DTYPE)
    return ReluRelax(lam, up, shift)


def pool_relax(lo: torch.Tensor, hi: torch.Tensor, kernel: tuple[int, int]) -> PoolRelax:
    """The max-pool relaxation for input bounds ``[lo, hi]`` (1, C, H, W)."""
    best, index = F.max_pool2d(lo, kernel, kernel, return_indices=True)
    top = F.max_pool2d(hi, kernel, kernel)
    flat = index.flatten(2)
    chosen = torch.zeros_like(hi).flatten(2).scatter_(2, flat, 1.0).view_as(hi).bool()
    others = F.max_pool2d(hi.masked_fill(chosen, float("-inf")), kernel, kernel)
    width = lo.shape[3]
    return PoolRelax(index // width, index % width, best >= others, top)


class DeepPoly:
    """DeepPoly bounds of one image's input box ``[lo, hi]`` (each ``(1, *in_shape)``); with ``rounding``
    those of the float32 network (``slack[i]``: the rounding bound ``(1, *shape)`` of affine op ``i``)."""

    def __init__(self, ops: Sequence[Op], lo: torch.Tensor, hi: torch.Tensor, intersect: bool = True,
                 budget: int = BUDGET, rounding: bool = True) -> None:
        self.ops, self.intersect, self.budget, self.rounding = list(ops), intersect, int(budget), rounding
        self.shapes = shapes(self.ops, tuple(lo.shape[1:]))
        self.bounds: list[Bounds] = [(lo.to(DTYPE), hi.to(DTYPE))]  # [0]: input; [i + 1]: op i's output
        self.relax: dict[int, ReluRelax | PoolRelax] = {}
        self.slack: dict[int, torch.Tensor] = {}
        for i, op in enumerate(self.ops):
            self.bounds.append(self._layer(i, op))

    # -- forward pass --------------------------------------------------------------------
    def _layer(self, i: int, op: Op) -> Bounds:
        lo, hi = self.bounds[i]
        if isinstance(op, Relu):
            self.relax[i] = relu_relax(lo, hi)
            return lo.clamp_min(0.0), hi.clamp_min(0.0)
        if isinstance(op, MaxPool):
            self.relax[i] = pool_relax(lo, hi, op.kernel)
            return F.max_pool2d(lo, op.kernel, op.kernel), F.max_pool2d(hi, op.kernel, op.kernel)
        if isinstance(op, Flatten):
            return lo.flatten(1), hi.flatten(1)
        if not isinstance(op, Affine):
            raise InputError(f"verify: no DeepPoly rule for {type(op).__name__}")
        out_shape = self.shapes[i + 1]
        if self.rounding:
            self.slack[i] = affine_rounding(op, lo, hi)
        if self.intersect:
            l_out, u_out = (t[0].clone() for t in interval_step(op, lo, hi, self.rounding))
            feeds_relu = i + 1 < len(self.ops) and isinstance(self.ops[i + 1], Relu)
            todo = u_out > 0 if feeds_relu else torch.ones_like(u_out, dtype=torch.bool)
        else:
            l_out, u_out = torch.empty(out_shape, dtype=DTYPE), torch.empty(out_shape, dtype=DTYPE)
            todo = torch.ones(out_shape, dtype=torch.bool)
        lv, uv = l_out.view(-1), u_out.view(-1)
        for idx, coef, offset, const in self._queries(i, op, todo):
            q = const.numel()
            low = self.lower(torch.cat([coef, -coef]), offset, torch.cat([const, -const]), i - 1)
            dl, du = low[:q], -low[q:]
            if self.rounding:
                e = self.slack[i].view(-1)[idx]
                dl, du = dl - e, du + e
            if self.intersect:
                lv[idx], uv[idx] = torch.maximum(lv[idx], dl), torch.minimum(uv[idx], du)
            else:
                lv[idx], uv[idx] = dl, du
        return l_out.unsqueeze(0), u_out.unsqueeze(0)

    def _queries(self, i: int, op: Affine, todo: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor, Window, torch.Tensor]]:
        """The neurons of op ``i``'s output marked in ``todo`` as (their flat index into the output,
        their rows on op i's input, the rows' window, their biases), in chunks. On feature maps a
        chunk is a tile of positions (all channels), so its rows cover only the tile's receptive
        field; on flat outputs a chunk of neurons on the whole input, within the memory budget."""
        in_shape, out_shape = self.shapes[i], self.shapes[i + 1]
        if len(out_shape) == 3:
            c, h, w = out_shape
            t = max(1, math.ceil(math.sqrt(TILE_QUERIES / c)))
            for r0 in range(0, h, t):
                for c0 in range(0, w, t):
                    ch, rr, cc = torch.nonzero(todo[:, r0:r0 + t, c0:c0 + t], as_tuple=True)
                    if ch.numel() == 0:
                        continue
                    th, tw = min(t, h - r0), min(t, w - c0)
                    onehot = torch.zeros(ch.numel(), c, th, tw, dtype=DTYPE)
                    onehot[torch.arange(ch.numel()), ch, rr, cc] = 1.0
                    coef, offset = op.transpose_window(onehot, (r0, c0), in_shape)
                    yield (ch * h + rr + r0) * w + cc + c0, coef, offset, op.bias_term(onehot)
            return
        flat = torch.nonzero(todo.flatten()).flatten()
        largest = max(_numel(s) for s in self.shapes[: i + 1])
        for idx in torch.split(flat, max(1, self.budget // (2 * largest))):
            rows, const = op.rows(idx, in_shape, out_shape)
            yield idx, rows, ((0, 0) if len(in_shape) == 3 else None), const

    # -- back-substitution ----------------------------------------------------------------
    def lower(self, coef: torch.Tensor, offset: Window, const: torch.Tensor, last: int) -> torch.Tensor:
        """Lower bounds (Q,) of ``coef_q · y + const_q`` over the input box, where ``y`` is the
        output of op ``last`` (-1: the input) and ``coef`` is ``(Q, *shape of y)``, or (Q, C, h, w) on
        the window of a feature map from ``offset``."""
        const = const.to(DTYPE).clone()
        for i in range(last, -1, -1):
            op = self.ops[i]
            if isinstance(op, Affine):
                if self.rounding:
                    const = const - (coef.abs() * _crop(self.slack[i], offset, coef)).flatten(1).sum(1)
                const = const + op.bias_term(coef)
                coef, offset = op.transpose_window(coef, offset, self.shapes[i])
            elif isinstance(op, Relu):
                r = self.relax[i]
                pos, neg = coef.clamp_min(0), coef.clamp_max(0)
                const = const + (neg * _crop(r.shift, offset, coef)).flatten(1).sum(1)
                coef = pos * _crop(r.lam, offset, coef) + neg * _crop(r.up, offset, coef)
            elif isinstance(op, MaxPool):
                coef, offset, extra = self._pool_back(self.relax[i], op.kernel, coef, offset)
                const = const + extra
            elif isinstance(op, Flatten):
                coef, offset = coef.reshape(coef.shape[0], *self.shapes[i]), ((0, 0) if len(self.shapes[i]) == 3 else None)
        lo, hi = (_crop(b, offset, coef) for b in self.bounds[0])
        flat = coef.flatten(1)
        return const + flat.clamp_min(0) @ lo.flatten() + flat.clamp_max(0) @ hi.flatten()

    @staticmethod
    def _pool_back(r: PoolRelax, kernel: tuple[int, int], coef: torch.Tensor,
                   offset: Window) -> tuple[torch.Tensor, Window, torch.Tensor]:
        """Coefficients on a max-pool's output window to coefficients on its input window."""
        r0, c0 = offset if offset is not None else (0, 0)
        q, c, h, w = coef.shape
        exact, top = _crop(r.exact, offset, coef), _crop(r.top, offset, coef)
        pos, neg = coef.clamp_min(0), coef.clamp_max(0)
        const = (neg * (~exact) * top).flatten(1).sum(1)
        moved = (pos + neg * exact).flatten(2)
        rows, cols = (t[:, :, r0:r0 + h, c0:c0 + w] for t in (r.rows, r.cols))
        a0, b0 = r0 * kernel[0], c0 * kernel[1]
        hh, ww = h * kernel[0], w * kernel[1]
        local = ((rows - a0) * ww + (cols - b0)).flatten(2).expand(q, -1, -1)
        out = torch.zeros(q, c, hh * ww, dtype=DTYPE).scatter_(2, local, moved)
        return out.view(q, c, hh, ww), (a0, b0), const


def _crop(t: torch.Tensor, offset: Window, like: torch.Tensor) -> torch.Tensor:
    """The part of a layer tensor ``t`` (1, C, H, W) on the window of ``like`` (Q, C, h, w) at
    ``offset``; ``t`` itself for flat or whole layers."""
    if offset is None:
        return t
    r0, c0 = offset
    return t[:, :, r0:r0 + like.shape[2], c0:c0 + like.shape[3]]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def deeppoly_bounds(ops: Sequence[Op], lo: torch.Tensor, hi: torch.Tensor, intersect: bool = True,
                    budget: int = BUDGET, rounding: bool = True) -> list[Bounds]:
    """Lower and upper bounds ``(N, *shape)`` of every op's output over the input box ``[lo, hi]`` (N, ...)
    (with ``rounding``: of the float32 network's values)."""
    per_image = [DeepPoly(ops, lo[n:n + 1], hi[n:n + 1], intersect, budget, rounding).bounds[1:] for n in range(lo.shape[0])]
    return [(torch.cat([b[i][0] for b in per_image]), torch.cat([b[i][1] for b in per_image])) for i in range(len(ops))]


def deeppoly_margins(ops: Sequence[Op], lo: torch.Tensor, hi: torch.Tensor, labels: torch.Tensor, intersect: bool = True,
                     budget: int = BUDGET, states: Sequence[DeepPoly] | None = None, rounding: bool = True) -> torch.Tensor:
    """Lower bounds (N, K) of ``z_k - z_j`` (``k = labels``) by back-substituting the difference
    from the output; ``+inf`` at ``j = k``; with ``rounding``, of the float32 logits (the last
    layer's slack ``E_k + E_j`` included). ``states``: the images' :class:`DeepPoly` if already
    built (their own ``rounding`` then applies)."""
    out = []
    for n in range(lo.shape[0]):
        dp = states[n] if states is not None else DeepPoly(ops, lo[n:n + 1], hi[n:n + 1], intersect, budget, rounding)
        k = dp.shapes[-1]
        if len(k) != 1:
            raise InputError(f"verify: margins need flat network outputs (N, K), got per-image shape {k}")
        spec = margin_spec(labels[n:n + 1], k[0])[0]  # (K, K)
        low = dp.lower(spec, None, torch.zeros(k[0], dtype=DTYPE), len(ops) - 1)
        out.append(low.masked_fill(spec.abs().sum(1) == 0, float("inf")))
    return torch.stack(out)
