"""``deep-svdd``: one-class Deep SVDD (Ruff, Vandermeulen, Görnitz, Deecke, Siddiqui, Binder,
Müller & Kloft, "Deep one-class classification", ICML 2018).

A bias-free network phi (:class:`~oodscope.nets.svdd.SVDDNet`, optionally pretrained as the
encoder of an autoencoder) is trained to map the in-distribution images close to a fixed centre
c (the mean of the initial phi over them):

    min_W  1/n sum_i ||phi(x_i; W) - c||^2  (+ weight decay),

and the score is the squared distance s(x) = ||phi(x) - c||^2, higher = more out-of-distribution.
Preprocessing, pretraining and the centre are those of the paper
(:mod:`oodscope.detectors.svdd_core`).
"""

from __future__ import annotations

from oodscope.detectors.base import Requires
from oodscope.detectors.registry import register
from oodscope.detectors.svdd_core import SVDDBase


@register
class DeepSVDDDetector(SVDDBase):
    method = "deep-svdd"
    paper = ('Ruff, Vandermeulen, Görnitz, Deecke, Siddiqui, Binder, Müller & Kloft, "Deep one-class classification", '
             'ICML 2018')
    requires = Requires()
    order = 73
