"""Evaluation protocols: which images are in-distribution, which are OOD, which are known outliers.

Public API::

    from oodscope.protocols import OneClassSplit, one_class, split_one_class
    from oodscope.protocols import sample_outliers, normalization_stats

* :func:`one_class` - one class of a data set is in-distribution; training uses
  only that class's training images; the whole test split is evaluated with
  every other class out-of-distribution.
* :func:`sample_outliers` - a deterministic sample of known outliers (outlier
  exposure) from an auxiliary data set, converted to the ID images' format.
* :func:`normalization_stats` - per-channel mean and std of the ID training images.

This layer imports only :mod:`oodscope.data` and :mod:`oodscope.errors`.
"""

from oodscope.protocols.one_class import OneClassSplit, one_class, split_one_class
from oodscope.protocols.outliers import sample_outliers
from oodscope.protocols.stats import normalization_stats

__all__ = ["OneClassSplit", "normalization_stats", "one_class", "sample_outliers", "split_one_class"]
