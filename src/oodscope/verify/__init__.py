"""Certified robustness of the CPU classifiers: for an image and an L∞ radius ε, a proof that the
predicted class is the same for every image within ε (inside the pixel range [0, 1]).

Two methods on networks of convolution, linear, ReLU, max-pooling (kernel = stride) and flatten
layers after a per-channel normalisation (oodscope's LeNet classifiers; anything else is refused
with :class:`~oodscope.errors.InputError`): interval bound propagation (Gowal et al. 2018) and
DeepPoly's back-substituted linear bounds (Singh et al., POPL 2019), tighter than intervals.
:func:`certify` gives the certificates, :func:`layer_bounds` the bounds of every layer.
"""

from oodscope.verify.certify import METHODS, CertResult, certified_share, certify, layer_bounds
from oodscope.verify.deeppoly import DeepPoly, deeppoly_bounds, deeppoly_margins
from oodscope.verify.interval import input_box, interval_bounds, interval_margins
from oodscope.verify.layers import SUPPORTED, Op, as_layers, forward

__all__ = ["METHODS", "SUPPORTED", "CertResult", "DeepPoly", "Op", "as_layers", "certified_share", "certify",
           "deeppoly_bounds", "deeppoly_margins", "forward", "input_box", "interval_bounds", "interval_margins",
           "layer_bounds"]
