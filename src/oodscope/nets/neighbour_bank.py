"""Reference features for a k-nearest-neighbour distance in a network's feature space (Sun et al.,
"Out-of-distribution detection with deep nearest neighbors", ICML 2022), over several views.

An image is described under V views (e.g. the geometric transformations of GEOM) by one feature
vector per view. Each vector is normalised to unit length, the V of them are concatenated and the
result is normalised again, so the cosine of two images is the mean over views of the cosines of
their views; that is a sum over views, and the views can be processed one at a time
(:meth:`similarity` per view, summed by the caller, then :meth:`distance`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NeighbourBank(nn.Module):
    """``features``: (views, n, dim) unit vectors of n reference images."""

    def __init__(self, views: int, n: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("features", torch.zeros(views, n, dim))

    @property
    def views(self) -> int:
        return self.features.shape[0]

    def similarity(self, z: torch.Tensor, view: int) -> torch.Tensor:
        """Cosines (batch, n) of the features ``z`` (batch, dim) of one view to the bank's."""
        return F.normalize(z.float(), dim=1) @ self.features[view].T

    def distance(self, similarity_sum: torch.Tensor, k: int) -> torch.Tensor:
        """Euclidean distance (batch,) between unit vectors of the concatenated views to the k-th
        nearest reference image, from the similarities summed over all views."""
        cos = similarity_sum / self.views
        kth = cos.topk(k, dim=1).values[:, -1]
        return torch.sqrt(torch.clamp(2.0 - 2.0 * kth, min=0.0))
