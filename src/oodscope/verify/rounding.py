"""The float32 rounding of the deployed network, which every certificate includes, and the check
that the deployed network computes in float32.

What is deployed: a classifier scores images with ``Classifier.logits`` in its ``precision``
setting. In "float32" every operation of the network — the input normalisation ``(x − mean) /
std`` (mean and std rounded to float32 first), each convolution and linear layer, ReLU, max
pooling — is IEEE-754 binary32 arithmetic with round-to-nearest on float32 inputs and weights;
the class is the arg-max of the float32 logits. The verifiers (:mod:`oodscope.verify.interval`,
:mod:`oodscope.verify.deeppoly`) compute in float64 on the same float32 weights, i.e. the
network in exact arithmetic; this module bounds how far the float32 network can be from it.

The bound, per neuron of an affine operation, on the box ``[l, u]`` of that operation's input
(``a = max(|l|, |u|)`` per input element; the box already contains the rounded values the
earlier layers deliver, so the errors of every layer are accounted for where they arise):

* convolution and linear layers, each output a dot product of ``n`` terms (``n`` = input channels
  × kernel size, or input features) plus a bias: ``|fl(w·x + b) − (w·x + b)| <= γ_{n+1}
  (|w|·a + |b|)`` with ``γ_k = k u / (1 − k u)`` and ``u = 2^-24``, valid for any order of the
  summation (blocked, pairwise, reordered by oneDNN) and with or without fused multiply-adds
  (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002, §3.1, inner
  products, whose bound does not depend on the order of evaluation; the bias is one more term
  with input 1);
* the normalisation ``(x − m) / s`` per channel, with ``m`` and ``s`` rounded to float32 and one
  subtraction and one division (or a multiplication by a rounded ``1 / s``, or ``x · (1/s) +
  (−m/s)`` with rounded constants): at most four relative roundings, so ``|n' − (x − m)/s| <=
  γ_4 (a / s + 3 |m / s|)`` (Higham 2002, Lemma 3.1; ``|x / s| <= |n| + |m / s|``);
* underflow: each rounding may also be off by an absolute amount below ``2^-126`` (gradual
  underflow, or flush-to-zero and denormals-are-zero modes, where a subnormal input also counts as
  0): ``2^-126 (max_i Σ_j |w_ij| + 2 (n + 1))`` per neuron, a constant per layer (``max (1/s)
  + 4`` for the normalisation);
* ReLU, max pooling and flatten are exact in float32 (no rounding).

Every bound is multiplied by :data:`SAFETY` = 1 + 2^-10. The verifiers' own float64 arithmetic
(``u = 2^-53``) is not outward-rounded, as DeepPoly's implementation in ELINA is (Singh, Gehr,
Püschel & Vechev, "An abstract domain for certifying neural networks", POPL 2019, whose analysis
is sound under floating-point arithmetic that way). On the interval steps its error has the same
form as above with a ``u`` 2^29 times smaller, i.e. at most 2^-29 of the float32 bound, which the
extra 2^-10 covers 2^19 times over; in DeepPoly's back-substitution the float64 errors are not
bounded separately: they are relative ``~2^-53`` on sums of magnitudes of the size the float32
terms bound (again some 2^19 times smaller than the extra 2^-10 of them), and the final margin must
also exceed ``TOLERANCE`` = 1e-9 (:mod:`oodscope.verify.certify`). (Up to 0.3.0 the factor was 2,
which took twice the margin the float32 rounding needs and certified fewer images where the boxes
are wide: the lab notebook, "The safety factor of the rounding bound".)

How the verifiers use it: interval bound propagation widens each affine output box by the bound;
DeepPoly adds ``−E`` and ``+E`` to the lower and upper symbolic bounds of each affine neuron (a
constant slack, so back-substitution carries ``−|coefficient| · E`` to the input; the concrete
bounds of the neuron are widened by ``E``). The margin ``z_k − z_j`` is then bounded on the
float32 logits, each within its ``E`` of the exact ones.

What is assumed of the deployment: float32 arithmetic on the CPU as PyTorch does it (no
bfloat16/TF32 down-conversion of float32 matrix products: ``torch.get_float32_matmul_precision()``
= "highest" and oneDNN's default strict floating-point mode, ``ONEDNN_DEFAULT_FPMATH_MODE`` unset;
convolutions computed as dot products, directly or through im2col and a matrix
product, not by Winograd or FFT transforms, which PyTorch's CPU convolutions do not use for these
5×5 kernels). On a GPU, cuDNN's convolutions default to TF32 (``u = 2^-11``), which these bounds
do not cover. A model that scores in bfloat16 is refused: :func:`require_float32`.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.errors import InputError
from oodscope.precision import precision_of
from oodscope.verify.layers import DTYPE, Affine, ChannelAffine, Conv, Dense

U32 = 2.0 ** -24  # unit roundoff of IEEE binary32, round to nearest
TINY32 = 2.0 ** -126  # the smallest normal binary32 number: the absolute error of an underflow
SAFETY = 1.0 + 2.0 ** -10  # every bound is multiplied by this: covers the verifiers' float64 rounding


def gamma(n: int, u: float = U32) -> float:
    """Higham's ``γ_n = n u / (1 − n u)`` (requires ``n u < 1``)."""
    if n * u >= 1:
        raise InputError(f"verify: a dot product of {n} terms is too long for a float32 error bound")
    return n * u / (1 - n * u)


def fan_in(op: Affine) -> int:
    """The number of products in each output of ``op`` (its dot products' length, the bias aside)."""
    if isinstance(op, Conv):
        return int(op.weight[0].numel())
    if isinstance(op, Dense):
        return int(op.weight.shape[1])
    if isinstance(op, ChannelAffine):
        return 1
    raise InputError(f"verify: no float32 rounding bound for {type(op).__name__}")


def _bias_view(op: Conv | Dense, ndim: int) -> torch.Tensor:
    return op.bias.abs().view(1, -1, *([1] * (ndim - 2)))


def affine_rounding(op: Affine, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Per output neuron, a bound ``(N, *out_shape)`` of ``|fl32(op(x)) − op(x)|`` for every float32
    ``x`` in the box ``[lo, hi]`` ``(N, *in_shape)`` of the op's input (see the module's docstring)."""
    a = torch.maximum(lo.abs(), hi.abs()).to(DTYPE)
    if isinstance(op, ChannelAffine):
        shift = op._view(op.shift.abs(), a.ndim)
        relative = gamma(4) * (op.abs_linear(a) + 3 * shift)
        tiny = TINY32 * (float(op.scale.abs().max()) + 4)
    elif isinstance(op, (Conv, Dense)):
        n = fan_in(op) + 1  # the bias is one more term
        out = op.abs_linear(a)
        relative = gamma(n) * (out + _bias_view(op, out.ndim))
        tiny = TINY32 * (float(op.weight.abs().flatten(1).sum(1).max()) + 2 * n)  # the largest row of |W|
    else:
        raise InputError(f"verify: no float32 rounding bound for {type(op).__name__}")
    return SAFETY * (relative + tiny)


def pixel_rounding(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box ``[lo, hi]`` (float64) rounded outward to float32 numbers (``lo`` down, ``hi`` up;
    unchanged where they are float32 numbers already), so that it contains the float32 number
    nearest to every value in it: the float32 image of every image of the box."""
    down, up = lo.float(), hi.float()
    down = torch.where(down.double() > lo, torch.nextafter(down, torch.tensor(-float("inf"))), down)
    up = torch.where(up.double() < hi, torch.nextafter(up, torch.tensor(float("inf"))), up)
    return down.to(DTYPE), up.to(DTYPE)


def require_float32(model: Any) -> None:
    """Refuse (one line, :class:`InputError`) a model whose deployed scores are not computed in
    float32: a Classifier (anything with a ``settings`` dict) or a detector (a ``config`` dict)
    whose :func:`oodscope.precision.precision_of` is not "float32". Networks and lists of ops are taken as
    float32 networks."""
    settings = getattr(model, "settings", None)
    if not isinstance(settings, dict):
        settings = getattr(model, "config", None)
    if not isinstance(settings, dict):
        return
    precision = precision_of(settings)
    if precision != "float32":
        raise InputError(f"verify: this model scores in {precision} (precision={precision}); certificates cover "
                         "float32 scoring only: refit it with --set precision=float32 (the default) to get a float32 model")
