"""The inner maximisation of adversarial training (Takahashi's lecture notes "Deep learning:
reliability of inference", University of Aizu, n.d., section "防御"; Madry et al. 2018):

    min_w (1/N) Σ_n max_{δ ∈ S} E(w, x_n + δ, d_n),   S = {δ : ‖δ‖∞ ≤ ε},

trained by replacing each batch with adversarial examples of the current network. ``kind``:
"pgd" (``steps`` steps of ``alpha`` from a random start, Madry et al.) or "fgsm-rs" (one FGSM step
of ``alpha`` from a random start in the ball, then projection: Wong, Rice & Kolter, "Fast is better
than free", ICLR 2020; about ``steps`` + 1 times cheaper). The network is put in evaluation mode
while the examples are crafted (dropout off) and given back in training mode.
"""

from __future__ import annotations

import torch

from oodscope.adversarial.fgsm import Model
from oodscope.adversarial.pgd import pgd

ADVERSARIAL_KINDS = ("none", "pgd", "fgsm-rs")


def adversarial_batch(model: Model, net: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, kind: str,
                      eps: float, alpha: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    """The training batch ``x`` replaced by adversarial examples of ``kind`` against ``model``
    (whose parameters are ``net``'s)."""
    if kind == "none" or eps == 0:
        return x
    net.eval()
    try:
        if kind == "pgd":
            return pgd(model, x, labels, eps, alpha, steps, 1, True, generator)
        if kind == "fgsm-rs":
            return pgd(model, x, labels, eps, alpha, 1, 1, True, generator)
        raise ValueError(f"unknown adversarial training kind {kind!r} ({', '.join(ADVERSARIAL_KINDS)})")
    finally:
        net.train()
