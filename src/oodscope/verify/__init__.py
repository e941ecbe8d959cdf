"""Certified robustness of the CPU classifiers: for an image and an L∞ radius ε, a proof that the
predicted class is the same for every image within ε (inside the pixel range [0, 1]).

Two methods on networks of convolution, linear, ReLU, max-pooling (kernel = stride) and flatten
layers after a per-channel normalisation (oodscope's LeNet classifiers; anything else is refused
with :class:`~oodscope.errors.InputError`): interval bound propagation (Gowal et al. 2018) and
DeepPoly's back-substituted linear bounds (Singh et al., POPL 2019), tighter than intervals.
:func:`certify` gives the certificates, :func:`layer_bounds` the bounds of every layer.

Also: :func:`ibp_loss` (:mod:`oodscope.verify.ibp_training`), the differentiable interval bounds of
Gowal et al.'s certified training (the classifier's ``adversarial="ibp"``), and
:func:`neuron_coverage` (:mod:`oodscope.verify.coverage`), DeepXplore's neuron coverage of a set of
test images (Pei et al. 2017).
"""

from oodscope.verify.certify import METHODS, CertResult, certified_share, certify, layer_bounds
from oodscope.verify.coverage import NeuronCoverage, neuron_coverage
from oodscope.verify.deeppoly import DeepPoly, deeppoly_bounds, deeppoly_margins
from oodscope.verify.ibp_training import ibp_loss, ibp_schedule, worst_case_logits
from oodscope.verify.interval import input_box, interval_bounds, interval_margins
from oodscope.verify.layers import SUPPORTED, Op, as_layers, forward

__all__ = ["METHODS", "SUPPORTED", "CertResult", "DeepPoly", "NeuronCoverage", "Op", "as_layers", "certified_share",
           "certify", "deeppoly_bounds", "deeppoly_margins", "forward", "ibp_loss", "ibp_schedule", "input_box",
           "interval_bounds", "interval_margins", "layer_bounds", "neuron_coverage", "worst_case_logits"]
