"""PGD, projected gradient descent in the L∞ ball (Kurakin et al. 2017's iterative FGSM; Madry et
al., "Towards deep learning models resistant to adversarial attacks", ICLR 2018; Takahashi's
lecture notes "Deep learning: reliability of inference", University of Aizu, n.d.):

    x^0 = Clip_[0,1](x + U(-ε, ε)^d)            (random start; x^0 = x without it)
    x^{t+1} = Clip_{x,ε}[x^t + α · sign(∇_x E(w, x^t, k_true))],

where Clip_{x,ε} projects onto the ball ‖x' − x‖∞ ≤ ε and then onto the pixel range [0, 1].
:func:`ascend` is the same iteration for any per-image objective (e.g. a detector's score, to
be lowered by ascending its negative); :func:`pgd` maximises the cross-entropy of the true class
and, over ``restarts``, keeps for each image the first example that fools the model (else the
last one).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from oodscope.adversarial.fgsm import Model


def ascend(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, alpha: float, steps: int,
           random_start: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images within L∞ distance ``eps`` of ``x`` (and in [0, 1]) that increase ``objective``
    (per image, shape (N,)) by ``steps`` signed-gradient steps of size ``alpha``."""
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    lo, hi = (x - eps).clamp_min(0.0), (x + eps).clamp_max(1.0)
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        xa = (x + eps * (2 * noise - 1)).clamp(0.0, 1.0)
    else:
        xa = x.clone()
    for _ in range(int(steps)):
        xa.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(xa).sum(), xa)
        xa = torch.max(torch.min(xa.detach() + alpha * grad.sign(), hi), lo)
    return xa.detach()


def pgd(model: Model, x: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float, steps: int,
        restarts: int = 1, random_start: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Untargeted PGD adversarial images of ``x`` for true classes ``labels``."""
    def loss(xa: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(xa).float(), labels, reduction="none")

    best = x.detach().clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(max(1, int(restarts))):
        xa = ascend(loss, x, eps, alpha, steps, random_start, generator)
        with torch.no_grad():
            wrong = model(xa).argmax(dim=1) != labels
        take = ~fooled  # images not yet fooled take this restart's example
        best[take] = xa[take]
        fooled |= wrong
        if bool(fooled.all()):
            break
    return best
