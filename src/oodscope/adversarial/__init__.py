"""Adversarial examples and adversarial training (the sections "敵対的事例" and "防御" of
Takahashi's lecture notes "Deep learning: reliability of inference", University of Aizu, n.d.).

Pure torch on a model ``model(x) -> logits`` of images ``x`` in [0, 1] (normalisation inside the
model): :func:`fgsm` (Goodfellow et al. 2015), :func:`pgd` (Madry et al. 2018; L∞, random start,
projection and clipping to the pixel range, restarts), :func:`targeted_l1` (Szegedy et al. 2014's
min E(x + δ, k_adv) + λ‖δ‖₁ as the notes write it), :func:`robust_accuracy`,
:func:`transfer_success` (attack one model, evaluate another) and :func:`adversarial_batch`,
the inner maximisation of adversarial training.
"""

from oodscope.adversarial.fgsm import fgsm
from oodscope.adversarial.pgd import ascend, pgd
from oodscope.adversarial.robust import robust_accuracy, transfer_success
from oodscope.adversarial.targeted import targeted_l1
from oodscope.adversarial.training import ADVERSARIAL_KINDS, adversarial_batch

__all__ = ["ADVERSARIAL_KINDS", "adversarial_batch", "ascend", "fgsm", "pgd", "robust_accuracy", "targeted_l1",
           "transfer_success"]
