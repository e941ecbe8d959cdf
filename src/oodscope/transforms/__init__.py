"""Geometric transformations applied to batches on the fly (GEOM, Golan & El-Yaniv 2018)."""

from oodscope.transforms.geometric import TRANSFORM_SETS, GeometricTransforms, transform_set

__all__ = ["TRANSFORM_SETS", "GeometricTransforms", "transform_set"]
