"""The geometric transformations of GEOM (Golan & El-Yaniv, NeurIPS 2018).

A transformation is (horizontal flip?, shift x, shift y, quarter turns). GEOM's full set is
flip x translations {0, +t, -t}^2 x rotations {0, 90, 180, 270} = 72, with t a quarter of the
image side. Smaller named sets keep the same parameterisation. Transformations are applied to
a batch on the fly, per sample, so 72 copies of a data set are never materialised.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from oodscope.errors import InputError


@dataclass(frozen=True)
class Transform:
    flip: bool
    dx: int  # -1, 0, +1 in units of the shift t
    dy: int
    rot: int  # quarter turns, counter-clockwise


def _product(flips, shifts, rots) -> list[Transform]:
    return [Transform(f, dx, dy, r) for f, dx, dy, r in itertools.product(flips, shifts, shifts, rots)]


TRANSFORM_SETS: dict[str, list[Transform]] = {
    "rot4": _product([False], [0], [0, 1, 2, 3]),
    "flip-rot4": _product([False, True], [0], [0, 1, 2, 3]),
    "geom72": [
        Transform(f, dx, dy, r)
        for f, dx, dy, r in itertools.product([False, True], [0, -1, 1], [0, -1, 1], [0, 1, 2, 3])
    ],
}


def _shift(x: torch.Tensor, dx: int, dy: int, t: int) -> torch.Tensor:
    """Translate by (dx*t, dy*t) pixels, filling the border by reflection as GEOM does."""
    if dx == 0 and dy == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (t, t, t, t), mode="reflect")
    top = t - dy * t
    left = t - dx * t
    return padded[..., top : top + h, left : left + w]


def rot90(x: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.rot90(x, k, dims=(-2, -1))`` (k quarter turns, counter-clockwise) from flips and a
    transpose, which ONNX export supports (it has no rot90)."""
    k %= 4
    if k == 1:
        return torch.flip(x, dims=(-1,)).transpose(-2, -1)
    if k == 2:
        return torch.flip(x, dims=(-2, -1))
    if k == 3:
        return torch.flip(x.transpose(-2, -1), dims=(-1,))
    return x


class GeometricTransforms:
    """A named list of geometric transformations with per-sample application.

    ``apply(x, idx)`` transforms sample ``i`` of ``x`` (N, C, H, W) by transformation ``idx[i]``.
    """

    def __init__(self, name: str, shift_fraction: float = 0.25) -> None:
        if name not in TRANSFORM_SETS:
            raise InputError(f"unknown transformation set {name!r}; known: {', '.join(TRANSFORM_SETS)}")
        self.name = name
        self.transforms = TRANSFORM_SETS[name]
        self.shift_fraction = shift_fraction

    def __len__(self) -> int:
        return len(self.transforms)

    def one(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Apply transformation ``k`` to every sample of ``x``."""
        tr = self.transforms[k]
        h, w = x.shape[-2:]
        if tr.rot % 2 and h != w:
            raise InputError(f"rotations by 90 degrees need square images, got {h}x{w}")
        if tr.flip:
            x = torch.flip(x, dims=(-1,))
        if tr.dx or tr.dy:
            t = max(1, int(round(self.shift_fraction * min(h, w))))
            t = min(t, min(h, w) - 1)
            x = _shift(x, tr.dx, tr.dy, t)
        if tr.rot:
            x = rot90(x, tr.rot)
        return x

    def apply(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Transform sample ``i`` by transformation ``idx[i]``; returns a new tensor."""
        out = torch.empty_like(x)
        for k in torch.unique(idx).tolist():
            sel = idx == k
            out[sel] = self.one(x[sel], k)
        return out


def transform_set(name: str) -> GeometricTransforms:
    return GeometricTransforms(name)
