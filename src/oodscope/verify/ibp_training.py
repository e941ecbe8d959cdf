"""Certified training with interval bound propagation (Gowal, Dvijotham, Stanforth, Bunel, Qin,
Uesato, Arandjelović, Mann & Kohli, "On the effectiveness of interval bound propagation for
training verifiably robust models", 2018).

The loss of a batch ``(x, y)`` at radius ``ε_t`` with weight ``κ_t`` is

    κ_t · CE(z(x), y) + (1 − κ_t) · CE(ẑ(x, ε_t), y),

where ``ẑ`` are the worst-case logits over the box ``[max(x − ε, 0), min(x + ε, 1)]``: with
``m_j`` a lower bound of the margin ``z_y − z_j`` over the box, ``ẑ_j = −m_j`` (``ẑ_y = 0``;
cross-entropy ignores a common shift of the logits, so this is the paper's ``ẑ_y = lower(z_y)``,
``ẑ_j = upper(z_j)`` with the last layer folded into the specification ``e_y − e_j``, which is
tighter). The schedule (:func:`ibp_schedule`) ramps ``ε_t`` linearly from 0 to the target and
``κ_t`` from 1 to 0.5 over the warm-up, then keeps them (the paper's ramp-up; its κ_final = 0.5).

Unlike :mod:`oodscope.verify.interval` (float64 copies of the weights, for certificates), the
bounds here are computed in float32 on the live parameters of the ``nn.Module`` and are
differentiable with respect to them: each layer in centre / radius form, ``c' = W c + b``,
``r' = |W| r`` for convolutions and linear layers, ``[f(l), f(u)]`` for the monotone ReLU, max
pooling and flatten. The input normalisation ``(x − mean) / std`` (``std > 0``, monotone) is
applied to the box's corners. The layers accepted are those the verifiers accept
(:func:`oodscope.verify.layers.module_ops`), so a network trained this way can be certified;
dropout is the identity in the bounds (the evaluation network, the one that is verified).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from oodscope.errors import InputError
from oodscope.verify.layers import Stats, _refuse, module_ops, normalized

KAPPA_FINAL = 0.5  # Gowal et al.'s final weight of the clean term


def ibp_modules(net: nn.Module) -> list[nn.Module]:
    """The leaf modules of ``net`` in the order of its forward pass (a LeNet as its blocks, an
    ``nn.Sequential`` recursively); :class:`InputError` for layers the verifiers do not accept."""
    from oodscope.nets.lenet import LeNet

    if type(net) is LeNet:
        return [m for part in (net.block1, net.block2, net.hidden, net.fc) for m in ibp_modules(part)]
    if type(net) is nn.Sequential:
        return [m for child in net for m in ibp_modules(child)]
    module_ops(net)  # refuses unsupported layers (and settings of supported ones) with their reason
    return [net]


def interval_step(m: nn.Module, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box of module ``m``'s output over the box ``[lo, hi]`` of its input (differentiable)."""
    if isinstance(m, nn.Conv2d | nn.Linear):
        c, r = (hi + lo) / 2, (hi - lo) / 2
        c = m(c)
        if isinstance(m, nn.Conv2d):
            r = F.conv2d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
        else:
            r = F.linear(r, m.weight.abs())
        return c - r, c + r
    if isinstance(m, nn.ReLU | nn.MaxPool2d | nn.Flatten):
        return m(lo), m(hi)
    if isinstance(m, nn.Identity | nn.Dropout):
        return lo, hi
    raise _refuse(m)


def worst_case_logits(net: nn.Module | Sequence[nn.Module], x: torch.Tensor, labels: torch.Tensor, eps: float,
                      mean: Stats = None, std: Stats = None, clip: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Worst-case logits ``ẑ`` (N, K) of images ``x`` in [0, 1] for classes ``labels`` over the L∞
    ball of radius ``eps`` (inside ``clip``): ``ẑ_j = −(lower bound of z_y − z_j)``, ``ẑ_y = 0``.
    Differentiable in the network's parameters; float32 (autocast off). ``net``: the network or
    its :func:`ibp_modules`; ``mean``, ``std``: the input normalisation."""
    if eps < 0:
        raise InputError(f"verify: eps must be >= 0, got {eps}")
    modules = ibp_modules(net) if isinstance(net, nn.Module) else list(net)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        lo, hi = x - eps, x + eps
        if clip is not None:
            lo, hi = lo.clamp(*clip), hi.clamp(*clip)
        lo, hi = normalized(lo, mean, std), normalized(hi, mean, std)
        *body, last = modules
        for m in body:
            lo, hi = interval_step(m, lo, hi)
        labels = labels.long().to(x.device)
        if isinstance(last, nn.Linear) and lo.ndim == 2:
            # the margins folded into the last layer: rows (e_y - e_j)^T W on the box of its input
            w, b = last.weight, last.bias if last.bias is not None else torch.zeros_like(last.weight[:, 0])
            diff = w[labels][:, None, :] - w[None, :, :]  # (N, K, D)
            c, r = (hi + lo) / 2, (hi - lo) / 2
            low = (torch.einsum("nkd,nd->nk", diff, c) - torch.einsum("nkd,nd->nk", diff.abs(), r)
                   + b[labels][:, None] - b[None, :])
        else:
            lo, hi = interval_step(last, lo, hi)
            if lo.ndim != 2:
                raise InputError(f"verify: the network's output must be flat logits (N, K), got shape {tuple(lo.shape)}")
            low = lo.gather(1, labels[:, None]) - hi
            low = low.scatter(1, labels[:, None], 0.0)
        return -low


def network_logits(net: nn.Module | Sequence[nn.Module], x: torch.Tensor, mean: Stats = None,
                   std: Stats = None) -> torch.Tensor:
    """The logits of images ``x`` in [0, 1] in float32 (autocast off), the network in its current
    mode (dropout active while training)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        z = normalized(x.float(), mean, std)
        if isinstance(net, nn.Module):
            return net(z)
        for m in net:
            z = m(z)
        return z


def ibp_loss(net: nn.Module | Sequence[nn.Module], x: torch.Tensor, labels: torch.Tensor, eps: float, kappa: float,
             mean: Stats = None, std: Stats = None, clip: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """``κ · CE(z(x), y) + (1 − κ) · CE(ẑ(x, ε), y)`` (Gowal et al. 2018), the mean over the batch.
    At ``ε = 0`` the worst-case logits are the logits shifted by ``−z_y``, so the loss is the plain
    cross-entropy for every ``κ``."""
    if not 0.0 <= kappa <= 1.0:
        raise InputError(f"verify: kappa must be in [0, 1], got {kappa}")
    labels = labels.long().to(x.device)
    clean = F.cross_entropy(network_logits(net, x, mean, std), labels)
    if kappa == 1.0:
        return clean
    worst = F.cross_entropy(worst_case_logits(net, x, labels, eps, mean, std, clip), labels)
    return kappa * clean + (1.0 - kappa) * worst


def ibp_schedule(done: int, total: int, warmup: float, eps: float) -> tuple[float, float]:
    """``(ε_t, κ_t)`` at training step ``done`` (0-based) of ``total``: both ramp linearly over the
    first ``warmup`` share of the steps, ``ε_t`` from 0 to ``eps`` and ``κ_t`` from 1 to 0.5, then
    stay (the ε ramp of the classifier's adversarial training, step ``done + 1`` of the warm-up)."""
    ramp = min(1.0, (done + 1) / max(1.0, warmup * total))
    return eps * ramp, 1.0 - (1.0 - KAPPA_FINAL) * ramp
