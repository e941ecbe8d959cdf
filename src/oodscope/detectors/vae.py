"""``vae``: the convolutional variational autoencoder of Hirokawa, "Anomaly detections using deep
learning (II): 2D-convolutional variational autoencoder" (n.d.; Kingma & Welling 2014) as a
one-class detector.

The encoder gives q(z|x) = N(mu(x), diag sigma(x)^2) with sigma through softplus; z = mu + eps *
sigma (the reparameterisation trick) is decoded to x' in [0, 1]. Training minimises the negative
evidence lower bound with a Bernoulli decoder,

    -ELBO(x) = BCE(x, x') summed over pixels + KL(q(z|x) || N(0, I)).

Scores (``score``), higher = more out-of-distribution:

* ``recon``: the mean squared error between x and the decoding of mu(x) (deterministic);
* ``elbo``: -ELBO(x), the reconstruction term averaged over ``samples`` draws of z.

It shares the autoencoder detector's plumbing (:class:`~oodscope.detectors.ae.AEDetector`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.detectors.ae import AE_DEFAULTS, AE_PRESETS, AEDetector
from oodscope.training.epochs import per_batch
from oodscope.detectors.registry import register
from oodscope.training.core import merge_presets
from oodscope.errors import InputError
from oodscope.nets.conv_ae import ConvVAE, kl_to_standard_normal

VAE_DEFAULTS: dict[str, Any] = {
    **AE_DEFAULTS,
    "score": "recon",
    "samples": 8,
}

VAE_PRESETS = merge_presets(AE_PRESETS, {"smoke": {"samples": 2}})


def neg_elbo(net: ConvVAE, x: torch.Tensor, samples: int = 1) -> torch.Tensor:
    """-ELBO per image: Bernoulli reconstruction term (mean over ``samples`` draws) + KL."""
    mu, sigma = net.encode(x)
    rec = torch.zeros(x.shape[0], device=x.device)
    for _ in range(samples):
        xr = net.decoder(mu + torch.randn_like(mu) * sigma)
        rec += F.binary_cross_entropy(xr, x, reduction="none").flatten(1).sum(dim=1)
    return rec / samples + kl_to_standard_normal(mu, sigma)


@register
class VAEDetector(AEDetector):
    method = "vae"
    paper = ('Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional variational autoencoder", '
             'n.d.; Kingma & Welling 2014')
    help = {"score": '"recon": squared error of the decoded mean; "elbo": -ELBO averaged over samples draws',
            "samples": 'draws of z for the "elbo" score'}
    defaults = VAE_DEFAULTS
    choices = {"score": ("recon", "elbo")}
    presets = VAE_PRESETS
    order = 71
    network = ConvVAE

    def _check_config(self) -> None:
        if int(self.config["samples"]) < 1:
            raise InputError(f"vae: samples must be at least 1, got {self.config['samples']}")

    def loss(self, xb: torch.Tensor) -> torch.Tensor:
        return neg_elbo(self.net, xb).mean()

    def decode_mean(self, xb: torch.Tensor) -> torch.Tensor:
        return self.net(xb, sample=False)[0]

    def latent(self, xb: torch.Tensor) -> torch.Tensor:
        return self.net.encode(xb)[0]

    def _score(self, x: torch.Tensor) -> np.ndarray:
        if self.config["score"] == "recon":
            return self.reconstruction_error(x)
        self.net.eval()
        torch.manual_seed(int(self.config["seed"]))  # the same draws for the same inputs
        return per_batch(x, 512, lambda b: neg_elbo(self.net, self.prepare(b), int(self.config["samples"])))
