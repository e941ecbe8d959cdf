"""ODIN (Liang, Li & Srikant, "Enhancing the reliability of out-of-distribution image detection in
neural networks", ICLR 2018): temperature scaling and input perturbation on a classifier.

A classifier f of the in-distribution classes (:class:`~oodscope.upstream.classifier.Classifier`,
trained on the labelled in-distribution images, or shared) is read post hoc. With temperature T,
S(x; T) = max_k softmax_k(f(x) / T). Each input is first moved a small step in the direction that
increases S (in-distribution images gain more from it than OOD ones):

    x~ = x - eps * sign(-grad_x log S(x; T)),

on the pixels x in [0, 1], and the score is s(x) = -S(x~; T), higher = more out-of-distribution.

``eps`` is in pixel units, as in the authors' code (``calData.py``: the sign of the gradient with
respect to the normalised input is divided by the channel's standard deviation before the step
is taken in normalised space, which is a step of exactly eps on the pixels) and in pytorch-ood;
the paper's text gives the formula on "the input" without saying which. The gradient is computed
in float32 whatever the model's scoring ``precision`` (a bfloat16 forward pass rounds the logits
by as much as the step changes them); S(x~; T) is then computed in that precision. No clipping to
[0, 1], as the authors. A zero gradient component gives no step there (``torch.sign``; the authors'
code steps +eps).

``temperature`` (T, default 1000) and ``eps`` (default 0.0014) are the values the paper chose
for its CIFAR networks; the paper tuned both on OOD validation images, which we do not: they are
fixed here. ``eps=0`` gives MSP with temperature T. ``outputs(x)`` also returns the logits of the
unperturbed image (from which the classifier's accuracy is read), in the scoring precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS
from oodscope.detectors.posthoc import LogitScoreDetector
from oodscope.detectors.registry import register
from oodscope.training.core import batches
from oodscope.errors import InputError

ODIN_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "temperature": 1000.0, "eps": 0.0014}


@register
class ODINDetector(LogitScoreDetector):
    method = "odin"
    paper = ('Liang, Li & Srikant, "Enhancing the reliability of out-of-distribution image detection in neural '
             'networks", ICLR 2018')
    help = {
        "temperature": "T of the softmax (the paper's CIFAR value: 1000, tuned there on OOD data; fixed here)",
        "eps": "input step, in pixels in [0, 1] (the paper's CIFAR value: 0.0014; 0: MSP at temperature T)",
    }
    defaults = ODIN_DEFAULTS
    order = 53

    def _check_config(self) -> None:
        super()._check_config()
        if self.config["eps"] < 0:
            raise InputError(f"odin: eps must be >= 0, got {self.config['eps']}")

    def perturb(self, x: torch.Tensor) -> torch.Tensor:
        """x~ = x - eps * sign(-grad_x log S(x; T)) (pixel units, gradient in float32) for one
        batch of images in [0, 1]."""
        return self._perturbed(x)[0]

    def _perturbed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x~ and the float32 logits of x computed on the way (None when eps = 0: then x~ is x)."""
        t, eps = float(self.config["temperature"]), float(self.config["eps"])
        if eps == 0:
            return x, None
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            logits = self.upstream.taps(xg, precision="float32")["logits"]
            log_s = torch.log_softmax(logits / t, dim=1).max(dim=1).values
            (grad,) = torch.autograd.grad(log_s.sum(), xg)
        return (x - eps * torch.sign(-grad)).detach(), logits.detach()

    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        t = float(self.config["temperature"])
        scores, plain = [], []
        for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
            xb = x[idx]
            xt, logits_x = self._perturbed(xb)
            with torch.no_grad():
                logits = self.upstream.taps(xt)["logits"]
                if logits_x is None:  # no step: x~ is x
                    logits_x = logits
                elif self.precision != "float32":  # the gradient pass ran in float32, not the model's precision
                    logits_x = self.upstream.taps(xb)["logits"]
            scores.append(-torch.softmax(logits.double().cpu() / t, dim=1).max(dim=1).values)
            plain.append(logits_x.cpu())
        return {"score": torch.cat(scores).numpy(), "logits": torch.cat(plain).numpy()}
