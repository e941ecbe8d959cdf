"""Reference features for a k-nearest-neighbour distance in a network's feature space (Sun et al.,
"Out-of-distribution detection with deep nearest neighbors", ICML 2022), over several views.

An image is described under V views (e.g. the geometric transformations of GEOM) by one feature
vector per view. Each vector is normalised to unit length, the V of them are concatenated and the
result is normalised again, so the cosine of two images is the mean over views of the cosines of
their views; that is a sum over views, and the views can be processed one at a time
(:meth:`similarity` per view, summed by the caller, then :meth:`distance`). A feature map
(batch, channels, h, w) is first averaged over a ``pool`` x ``pool`` grid of cells
(:func:`grid_pool`), so it keeps where in the image a feature is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grid_pool(t: torch.Tensor, pool: int) -> torch.Tensor:
    """(batch, channels * pool * pool): the means of a map (batch, channels, h, w) over a pool x pool
    grid of cells, in the order of ``adaptive_avg_pool2d(t, pool).flatten(1)``; written with slices
    so that it exports to ONNX whatever h and w. A (batch, dim) vector is returned as it is."""
    if t.dim() == 2:
        return t
    h, w = t.shape[-2:]
    rows = [t[:, :, (i * h) // pool:-((-(i + 1) * h) // pool)] for i in range(pool)]
    cells = [r[..., (j * w) // pool:-((-(j + 1) * w) // pool)].mean(dim=(2, 3)) for r in rows for j in range(pool)]
    return torch.stack(cells, dim=2).flatten(1)


class NeighbourBank(nn.Module):
    """``features``: (views, n, dim) unit vectors of n reference images; ``pool``: the grid a feature
    map is averaged over before it is compared (:func:`grid_pool`)."""

    def __init__(self, views: int, n: int, dim: int, pool: int = 1) -> None:
        super().__init__()
        self.pool = pool
        self.register_buffer("features", torch.zeros(views, n, dim))

    @property
    def views(self) -> int:
        return self.features.shape[0]

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """Unit vectors (batch, dim) of features ``z``: a (batch, dim) vector or a feature map."""
        return F.normalize(grid_pool(z.float(), self.pool), dim=1)

    def similarity(self, z: torch.Tensor, view: int) -> torch.Tensor:
        """Cosines (batch, n) of the features ``z`` (as :meth:`embed` takes them) of one view to the bank's."""
        return self.embed(z) @ self.features[view].T

    def distance(self, similarity_sum: torch.Tensor, k: int) -> torch.Tensor:
        """Euclidean distance (batch,) between unit vectors of the concatenated views to the k-th
        nearest reference image, from the similarities summed over all views."""
        cos = similarity_sum / self.views
        kth = cos.topk(k, dim=1).values[:, -1]
        return torch.sqrt(torch.clamp(2.0 - 2.0 * kth, min=0.0))
