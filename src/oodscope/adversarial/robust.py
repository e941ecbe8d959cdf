"""Accuracy under attack and transferability (the section "転移可能性" of Takahashi's lecture
notes "Deep learning: reliability of inference", University of Aizu, n.d.).

:func:`robust_accuracy` attacks a model's own gradients (white box) in batches and counts the
images still classified correctly. :func:`transfer_success` crafts the examples on a source
model A and evaluates them on a target model B trained independently: the share of images that
both models classify correctly when clean and that B misclassifies after A's attack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from oodscope.adversarial.fgsm import Model, fgsm
from oodscope.adversarial.pgd import pgd
from oodscope.progress import progress

Attack = Callable[[Model, torch.Tensor, torch.Tensor], torch.Tensor]


def make_attack(name: str, eps: float, steps: int = 40, alpha: float | None = None, restarts: int = 1,
                seed: int = 0) -> Attack:
    """An attack ``(model, x, labels) -> x_adv`` by name: "fgsm", or "pgd" with ``steps`` steps of
    ``alpha`` (default 2.5 ε / steps, Madry et al.'s rule) and ``restarts`` random starts."""
    if name == "fgsm":
        return lambda model, x, y: fgsm(model, x, y, eps)
    if name != "pgd":
        raise ValueError(f"unknown attack {name!r} (fgsm, pgd)")
    step = 2.5 * eps / max(1, steps) if alpha is None else alpha
    g = torch.Generator().manual_seed(seed)
    return lambda model, x, y: pgd(model, x, y, eps, step, steps, restarts, True, g)


def _predict(model: Model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def robust_accuracy(model: Model, x: torch.Tensor, labels: torch.Tensor, attack: Attack, batch_size: int = 500,
                    show: bool = False, what: str = "attack") -> dict[str, Any]:
    """Clean and adversarial accuracy (%) of ``model`` on ``x``, ``labels`` under ``attack``."""
    clean = adv = 0
    bar = progress(x.shape[0], what, show)
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        clean += int((_predict(model, xb) == yb).sum())
        adv += int((_predict(model, attack(model, xb, yb)) == yb).sum())
        bar.update(xb.shape[0])
    bar.close()
    n = x.shape[0]
    return {"n": n, "clean_accuracy": 100.0 * clean / n, "accuracy": 100.0 * adv / n}


def transfer_success(source: Model, target: Model, x: torch.Tensor, labels: torch.Tensor, attack: Attack,
                     batch_size: int = 500, show: bool = False) -> dict[str, Any]:
    """Examples crafted on ``source``, evaluated on ``target``: white-box success on the source,
    transfer success on the target (both in %, over images both classify correctly when clean)."""
    both = fooled_src = fooled_tgt = 0
    bar = progress(x.shape[0], "transfer", show)
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        ok = (_predict(source, xb) == yb) & (_predict(target, xb) == yb)
        xa = attack(source, xb[ok], yb[ok])
        both += int(ok.sum())
        fooled_src += int((_predict(source, xa) != yb[ok]).sum())
        fooled_tgt += int((_predict(target, xa) != yb[ok]).sum())
        bar.update(xb.shape[0])
    bar.close()
    return {"n": both, "source_success": 100.0 * fooled_src / max(1, both),
            "transfer_success": 100.0 * fooled_tgt / max(1, both)}
