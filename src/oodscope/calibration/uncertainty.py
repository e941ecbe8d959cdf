"""Uncertainty scores of a set of predictive distributions for the same inputs (an ensemble's
members, or MC-dropout passes), as Takahashi's lecture notes "Deep learning: reliability of
inference" (University of Aizu, n.d.) define them.

Given I distributions p_i(y | x) (``probs`` of shape (I, N, K)), with mean p(y | x):

* ``max-prob``: -max_k p_k(x) (the confidence of the averaged prediction, negated);
* ``entropy``: H[p(y | x)] = -sum_k p_k log p_k, the total uncertainty;
* ``variation-ratio``: m / I, m the number of the I predicted classes (arg-max of each p_i) that
  are not the most frequent one. The notes write v = 1 - m/I with this m, which is the share of
  the majority class, i.e. agreement; its complement m / I = 1 - f_mode / I is Freeman's (1965)
  variation ratio, the form used as an uncertainty, higher when the members disagree;
* ``mi``: the mutual information H[p(y | x)] - E_i H[p_i(y | x)], the epistemic part (the total
  minus the expected aleatoric entropy).

All are higher = more uncertain = more out-of-distribution; computed in float64.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

SCORES = ("max-prob", "entropy", "variation-ratio", "mi")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-300))).sum(dim=-1)


def uncertainty_scores(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every score of :data:`SCORES` for ``probs`` (I, N, K) (each row a distribution), shape (N,)."""
    p = probs.double()
    mean = p.mean(dim=0)
    votes = torch.nn.functional.one_hot(p.argmax(dim=-1), p.shape[-1]).sum(dim=0)  # (N, K) counts
    total = _entropy(mean)
    return {
        "max-prob": -mean.max(dim=-1).values,
        "entropy": total,
        "variation-ratio": 1.0 - votes.max(dim=-1).values.double() / p.shape[0],
        "mi": total - _entropy(p).mean(dim=0),
    }


def pooled_outputs(batches: Iterable[torch.Tensor], score: str) -> dict[str, np.ndarray]:
    """Every score of :data:`SCORES` over batches of ``probs`` (I, n, K), concatenated; ``logits``:
    the log of the mean distribution (float32, its arg-max is the pooled prediction); ``score``: a
    copy of the one named ``score``."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*SCORES, "logits")}
    for probs in batches:
        for k, v in uncertainty_scores(probs).items():
            parts[k].append(v.cpu())
        parts["logits"].append(torch.log(probs.double().mean(dim=0).clamp_min(1e-300)).float().cpu())
    out = {k: torch.cat(v).numpy() for k, v in parts.items()}
    out["score"] = out[score].copy()
    return out
