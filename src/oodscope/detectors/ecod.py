"""ECOD (Li, Zhao, Hu, Botta, Ionescu & Chen, IEEE TKDE 2022), PyOD's ``ECOD``: per feature, the
empirical left and right tail probabilities of x; the score sums -log of them over the features
(the larger of the left-, right- and skewness-chosen sums), with no parameters to set."""

from __future__ import annotations

from typing import Any

from oodscope.detectors.pyod_base import PyODDetector
from oodscope.detectors.registry import register


@register
class ECODDetector(PyODDetector):
    method = "ecod"
    paper = ('Li, Zhao, Hu, Botta, Ionescu & Chen, "ECOD: unsupervised outlier detection using empirical cumulative '
             'distribution functions", IEEE TKDE 2022')
    pyod_model = "pyod.models.ecod.ECOD"
    defaults: dict[str, Any] = {}
    order = 64
