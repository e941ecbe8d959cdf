"""Certified robustness of the CPU classifiers: for an image and an L∞ radius ε, a proof that the
predicted class is the same for every image within ε (inside the pixel range [0, 1]).

What is certified is the deployed network: the classifier scoring in float32 (its ``precision``
setting) on float32 images. The bounds are computed in float64 on the float32 weights and include
a rigorous bound of the float32 rounding of every affine layer and of the input normalisation
(:mod:`oodscope.verify.rounding`, after Higham 2002); a model that scores in bfloat16 is refused
with :class:`~oodscope.errors.InputError` (:func:`require_float32`).

Two methods on networks of convolution, linear, ReLU, max-pooling (kernel = stride) and flatten
layers after a per-channel normalisation (oodscope's LeNet classifiers; anything else is refused
with :class:`~oodscope.errors.InputError`): interval bound propagation (Gowal et al. 2018) and
DeepPoly's back-substituted linear bounds (Singh et al., POPL 2019), tighter than intervals.
:func:`certify` gives the certificates, :func:`layer_bounds` the bounds of every layer,
:func:`certify_box` certificates of arbitrary input boxes.

Geometric certificates (:mod:`oodscope.verify.geometric`, after DeepG, Balunović et al. 2019):
:func:`certify_rotation` (and :func:`certify_geometric` for translations and scalings too) proves the
class constant for every rotation within ±θ degrees, with per-pixel interval bounds of the
bilinearly interpolated image over sub-intervals of the angle.

Also: :func:`ibp_loss` (:mod:`oodscope.verify.ibp_training`), the differentiable interval bounds of
Gowal et al.'s certified training (the classifier's ``adversarial="ibp"``), and
:func:`neuron_coverage` (:mod:`oodscope.verify.coverage`), DeepXplore's neuron coverage of a set of
test images (Pei et al. 2017).
"""

from oodscope.verify.certify import METHODS, CertResult, certified_share, certify, certify_box, layer_bounds
from oodscope.verify.coverage import NeuronCoverage, neuron_coverage
from oodscope.verify.deeppoly import DeepPoly, deeppoly_bounds, deeppoly_margins
from oodscope.verify.geometric import certify_geometric, certify_rotation, pixel_bounds, transform
from oodscope.verify.ibp_training import ibp_loss, ibp_schedule, worst_case_logits
from oodscope.verify.interval import input_box, interval_bounds, interval_margins
from oodscope.verify.layers import SUPPORTED, Op, as_layers, forward
from oodscope.verify.rounding import affine_rounding, require_float32

__all__ = ["METHODS", "SUPPORTED", "CertResult", "DeepPoly", "NeuronCoverage", "Op", "affine_rounding", "as_layers",
           "certified_share",
           "certify", "certify_box", "certify_geometric", "certify_rotation", "deeppoly_bounds", "deeppoly_margins",
           "forward", "ibp_loss", "ibp_schedule", "input_box", "interval_bounds", "interval_margins", "layer_bounds",
           "neuron_coverage", "pixel_bounds", "require_float32", "transform", "worst_case_logits"]
