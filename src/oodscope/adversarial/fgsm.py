"""FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy, "Explaining and harnessing
adversarial examples", ICLR 2015; Takahashi's lecture notes "Deep learning: reliability of
inference", University of Aizu, n.d.):

    x_adv = Clip_[0,1](x + ε · sign(∇_x E(w, x, k_true))),

one step that increases the loss E (cross-entropy) of the true class as much as a linear model
of it predicts, within the L∞ ball of radius ε.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Model = Callable[[torch.Tensor], torch.Tensor]


def input_gradient(model: Model, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∇_x of the summed cross-entropy of ``labels`` at images ``x`` (the model's parameters get no gradient)."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: Model, x: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Adversarial images of ``x`` (in [0, 1]) for classes ``labels`` at L∞ radius ``eps``."""
    if eps == 0:
        return x.detach().clone()
    return (x + eps * input_gradient(model, x, labels).sign()).clamp(0.0, 1.0).detach()
