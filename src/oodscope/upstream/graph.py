"""A detector's whole score as one traceable torch module, for export (ONNX): images in [0, 1]
``(N, C, H, W)`` at the fitted size -> scores ``(N,)``, higher = more out-of-distribution.

:class:`Normalized` is the plain shape: ``fn(parts, (x - mean) / std)``, e.g. a classifier's
logits turned into a score.

:class:`TransformSum` is the shape of the GEOM family's scores, the same computation as
:func:`oodscope.training.core.sum_over_transforms` but with the loop over transformations
unrolled into the graph: ``post(sum_k term(T_k(normalise(x)), k))``. It computes in float32, as
the library does for a model of ``precision`` float32 (the default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from oodscope.transforms.geometric import GeometricTransforms

Term = Callable[[dict[str, nn.Module], torch.Tensor, int], torch.Tensor]


def _register_stats(module: nn.Module, stats: dict[str, Any]) -> None:
    """The per-channel ``mean`` and ``std`` of the training images as buffers of ``module``."""
    for key in ("mean", "std"):
        module.register_buffer(key, torch.tensor(stats[key], dtype=torch.float32).view(1, -1, 1, 1))


class Normalized(nn.Module):
    """``fn(parts, (x - mean) / std)``; ``parts``: the networks ``fn`` uses (registered, so their
    weights are in the graph); ``stats``: per-channel ``mean`` and ``std`` of the training images."""

    def __init__(self, parts: dict[str, nn.Module], stats: dict[str, Any],
                 fn: Callable[[dict[str, nn.Module], torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.parts, self.fn = nn.ModuleDict(parts), fn
        _register_stats(self, stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(dict(self.parts.items()), (x - self.mean) / self.std)


class TransformSum(nn.Module):
    """``post(sum_k term(parts, T_k((x - mean) / std), k))`` over every transformation ``T_k``
    (no ``post``: the sum itself).

    ``parts``: the networks ``term`` uses (registered, so their weights are in the graph);
    ``stats``: per-channel ``mean`` and ``std`` of the training images.
    """

    def __init__(self, parts: dict[str, nn.Module], transforms: GeometricTransforms, stats: dict[str, Any],
                 term: Term, post: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.transforms, self.term, self.post = transforms, term, post
        _register_stats(self, stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = (x - self.mean) / self.std
        total = None
        for k in range(len(self.transforms)):
            t = self.term(dict(self.parts.items()), self.transforms.one(xn, k), k).float()
            total = t if total is None else total + t
        return total if self.post is None else self.post(total)
