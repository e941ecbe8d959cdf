"""The targeted attack of Takahashi's lecture notes "Deep learning: reliability of inference"
(University of Aizu, n.d.; Szegedy et al., "Intriguing properties of neural networks", ICLR 2014):

    min_{δ, λ} E(w, x + δ, k_adv) + λ ‖δ‖₁   subject to x + δ ∈ [0, 1]^d,

a perturbation that makes the model predict the chosen class k_adv, kept small in L1 (sparse:
few pixels change). For a fixed λ the objective is minimised by proximal gradient descent
(ISTA: a gradient step on the cross-entropy E, soft-thresholding of δ by step·λ, projection onto
the pixel range); the minimisation over λ is, as in Szegedy et al., a search for the largest λ
(the smallest perturbation) at which the attack still succeeds, per image, by bisection on a log
scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from oodscope.adversarial.fgsm import Model


def _ista(model: Model, x: torch.Tensor, target: torch.Tensor, lam: torch.Tensor, step: float, steps: int) -> torch.Tensor:
    delta = torch.zeros_like(x)
    shrink = (step * lam).view(-1, *([1] * (x.dim() - 1)))
    for _ in range(int(steps)):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta).float(), target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        d = delta.detach() - step * grad
        d = d.sign() * (d.abs() - shrink).clamp_min(0.0)  # prox of step·λ‖·‖₁
        delta = (x + d).clamp(0.0, 1.0) - x
    return delta.detach()


def targeted_l1(model: Model, x: torch.Tensor, target: torch.Tensor, lam_range: tuple[float, float] = (1e-3, 10.0),
                searches: int = 6, steps: int = 100, step: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial images of ``x`` aimed at classes ``target``, and whether each reached its target.

    Each image's λ is bisected (on a log scale) between ``lam_range`` over ``searches`` rounds of
    ``steps`` ISTA steps of size ``step``; the successful perturbation of the largest λ is kept
    (an image that never succeeds keeps the attempt of the smallest λ).
    """
    lo = torch.full((x.shape[0],), math.log(lam_range[0]), device=x.device)
    hi = torch.full((x.shape[0],), math.log(lam_range[1]), device=x.device)
    best = _ista(model, x, target, lo.exp(), step, steps)
    with torch.no_grad():
        success = model(x + best).argmax(dim=1) == target
    for _ in range(int(searches)):
        mid = (lo + hi) / 2
        delta = _ista(model, x, target, mid.exp(), step, steps)
        with torch.no_grad():
            ok = model(x + delta).argmax(dim=1) == target
        best[ok] = delta[ok]
        success |= ok
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return (x + best).detach(), success
