"""``alocc``: Adversarially Learned One-Class Classifier (Sabokrou, Khalooei, Fathy & Adeli,
"Adversarially learned one-class classifier for novelty detection", CVPR 2018), as implemented
in Chainer for MNIST by an anonymous blog post (author, title and date not given; n.d.).

A reconstructor R (a convolutional autoencoder) and a discriminator D are trained against each
other on in-distribution images x and their noisy versions x~ = clip(x + N(0, sigma^2), 0, 1):

    D maximises  E[log D(x)] + E[log(1 - D(R(x~)))],
    R minimises  E[log(1 - D(R(x~)))] (as -E[log D(R(x~))]) + lambda * E[||x - R(x~)||^2].

The paper's premise: R learns to reconstruct (and denoise) the normal class only, so R
"enhances" normal images and garbles others, and D, which judges whether an image looks like a
real normal one, sees the difference (docs/lab/BENCHMARKS.md measures where this fails). Scores (``score``), higher = more out-of-distribution:

* ``d``: -logit D(x) (the default);
* ``d_of_r``: -logit D(R(x)), the paper's detector. In our measurements (docs/lab/BENCHMARKS.md) it
  is inverted: R(x) of an anomaly looks *more* real to D than R(x) of a normal image (uniform
  noise scores as the most normal input) - our reading: D learns R's artefacts on the normal
  class rather than the class itself;
* ``recon``: the reconstruction error mean (x - R(x))^2 (not in the paper: R alone, for comparison).

A score above 0 means D judges the image more likely fake/abnormal than normal (the 0.5 threshold of
the ALOCC blog post). Training is deterministic under ``seed`` on a CPU; how much it varies over
seeds is measured in docs/lab/BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.training.epochs import per_batch, per_image_mse, resize, work_size
from oodscope.detectors.registry import register
from oodscope.training.core import batches, device_of
from oodscope.errors import InputError
from oodscope.nets.alocc import Discriminator, Reconstructor
from oodscope.progress import progress

ALOCC_DEFAULTS: dict[str, Any] = {
    "width": 16,
    "noise_std": 0.155,
    "lambda_rec": 0.4,
    "score": "d",
    "epochs": 5,
    "batch_size": 64,
    "lr": 2e-4,
    "seed": 0,
    "device": "cpu",
    "progress": True,
}

ALOCC_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"epochs": 50, "device": "cuda"},  # longer training on a GPU (the blog post gives no epoch count)
    "smoke": {"width": 4, "epochs": 1},
    "demo": {"epochs": 15},
}


@register
class ALOCCDetector(Detector):
    method = "alocc"
    paper = ('Sabokrou, Khalooei, Fathy & Adeli, "Adversarially learned one-class classifier for novelty detection", '
             'CVPR 2018')
    help = {
        "width": "maps of the first convolution, doubling per layer (the blog post: 16)",
        "noise_std": "sigma of the Gaussian noise added to the training images",
        "lambda_rec": "lambda: weight of the reconstruction loss",
        "score": '"d": -logit D(x); "d_of_r": -logit D(R(x)) (the paper); "recon": reconstruction error of R(x)',
        "epochs": "passes over the training images",
        "batch_size": "images per training batch",
        "lr": "Adam's learning rate (betas 0.5, 0.999) of R and D",
    }
    requires = Requires()
    defaults = ALOCC_DEFAULTS
    choices = {"score": ("d_of_r", "d", "recon")}
    presets = ALOCC_PRESETS
    order = 72
    # Called after each training epoch with (epoch, detector): the alocc-epochs study (the blog
    # post's experiment) records accuracy and F1 on a test set this way.
    on_epoch: ClassVar[Callable[[int, Any], None] | None] = None

    def _check_config(self) -> None:
        c = self.config
        if c["noise_std"] < 0 or c["lambda_rec"] < 0:
            raise InputError(f"alocc: noise_std and lambda_rec must be non-negative, got {c['noise_std']}, {c['lambda_rec']}")

    def _build(self) -> None:
        c = self.config
        self.side = work_size(self.fitted["size"])
        self.device = device_of(c["device"])
        ch = self.fitted["channels"]
        self.r = Reconstructor(ch, int(c["width"])).to(self.device)
        self.d = Discriminator(ch, int(c["width"])).to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"r": self.r, "d": self.d}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, self.side).to(self.device)

    def _fit(self, data: FitData) -> None:
        c = self.config
        x = data.x
        g = torch.Generator().manual_seed(int(c["seed"]))
        opt_r = torch.optim.Adam(self.r.parameters(), lr=float(c["lr"]), betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.d.parameters(), lr=float(c["lr"]), betas=(0.5, 0.999))
        n, bs = x.shape[0], int(c["batch_size"])
        bar = progress(int(c["epochs"]) * ((n + bs - 1) // bs), "alocc: training R and D", c["progress"])
        for epoch in range(int(c["epochs"])):
            self.r.train()
            self.d.train()
            for idx in batches(n, bs, g, shuffle=True):
                xb = self.prepare(x[idx])
                noisy = (xb + float(c["noise_std"]) * torch.randn(xb.shape, generator=g).to(self.device)).clamp(0, 1)
                ones, zeros = torch.ones(len(idx), device=self.device), torch.zeros(len(idx), device=self.device)
                # D: real normal images -> 1, reconstructions of noisy ones -> 0
                fake = self.r(noisy)
                loss_d = (F.binary_cross_entropy_with_logits(self.d(xb), ones)
                          + F.binary_cross_entropy_with_logits(self.d(fake.detach()), zeros))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                # R: fool D, and reconstruct x
                rec = (fake - xb).pow(2).flatten(1).sum(dim=1).mean()  # ||x - R(x~)||^2, summed over pixels
                loss_r = F.binary_cross_entropy_with_logits(self.d(fake), ones) + float(c["lambda_rec"]) * rec
                opt_r.zero_grad(set_to_none=True)
                loss_r.backward()
                opt_r.step()
                bar.set_postfix(d=f"{loss_d.item():.3f}", r=f"{loss_r.item():.3f}")
                bar.update(1)
            self.r.eval()
            self.d.eval()
            if type(self).on_epoch is not None:
                type(self).on_epoch(epoch + 1, self)
        bar.close()
        self.r.eval()
        self.d.eval()

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) for images in [0, 1] (at the network's side)."""
        self.r.eval()
        return torch.from_numpy(per_batch(x, 512, lambda b: self.r(self.prepare(b)))).float()

    def _score(self, x: torch.Tensor) -> np.ndarray:
        self.r.eval()
        self.d.eval()
        if self.config["score"] == "d":
            return per_batch(x, 512, lambda b: -self.d(self.prepare(b)))
        if self.config["score"] == "recon":
            def err(b: torch.Tensor) -> torch.Tensor:
                xb = self.prepare(b)
                return per_image_mse(self.r(xb), xb)
            return per_batch(x, 512, err)
        return per_batch(x, 512, lambda b: -self.d(self.r(self.prepare(b))))
