"""``ae``: the convolutional autoencoder of Hirokawa, "Anomaly detections using deep learning (II):
2D-convolutional variational autoencoder" (n.d.), as a one-class detector: reconstruction-error
anomaly detection with an autoencoder (Sakurada & Yairi, "Anomaly detection using autoencoders with
nonlinear dimensionality reduction", 2014), here convolutional.

The autoencoder (:class:`~oodscope.nets.conv_ae.ConvAE`) is trained on in-distribution images
alone to minimise the mean squared error ||x - D(E(x))||^2. An image unlike the training data is
reconstructed badly, so the score is the reconstruction error

    s(x) = mean over pixels (x - D(E(x)))^2,   higher = more out-of-distribution.

Images of other sizes than 28x28 and 32x32 are resized (bilinear) to the nearest of them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.training.epochs import per_batch, per_image_mse, resize, train_epochs, work_size
from oodscope.detectors.registry import register
from oodscope.training.core import device_of
from oodscope.nets.conv_ae import ConvAE

AE_DEFAULTS: dict[str, Any] = {
    "latent": 16,
    "widths": [4, 16, 64],
    "epochs": 20,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "seed": 0,
    "device": "cpu",
    "progress": True,
}
AE_HELP: dict[str, str] = {
    "latent": "maps of the 1x1 latent code",
    "widths": "maps of the three encoder layers (Hirokawa's: 4, 16, 64)",
    "epochs": "passes over the training images",
    "batch_size": "images per training batch",
    "lr": "Adam's learning rate",
    "weight_decay": "Adam's weight decay (L2 penalty)",
}

# paper: Hirokawa's report trains a 64-d latent for its anomaly experiment; smoke/demo: small and fast.
AE_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"latent": 64, "epochs": 100, "device": "cuda"},
    "smoke": {"latent": 4, "epochs": 1},
    "demo": {"epochs": 30, "batch_size": 64},
}


@register
class AEDetector(Detector):
    method = "ae"
    paper = ('Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional variational autoencoder", '
             'n.d.; Sakurada & Yairi 2014')
    help = AE_HELP
    requires = Requires()
    defaults = AE_DEFAULTS
    presets = AE_PRESETS
    order = 70
    network: ClassVar[type[torch.nn.Module]] = ConvAE

    def _build(self) -> None:
        c = self.config
        self.side = work_size(self.fitted["size"])
        self.device = device_of(c["device"])
        self.net = type(self).network(self.fitted["channels"], self.side, int(c["latent"]), tuple(c["widths"]))
        self.net.to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {self.method: self.net}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Images as the network reads them: resized to its side, on its device."""
        return resize(x, self.side).to(self.device)

    # what differs between the autoencoder and the VAE
    def loss(self, xb: torch.Tensor) -> torch.Tensor:
        """The training loss of a prepared batch: the mean squared error."""
        return F.mse_loss(self.net(xb)[0], xb)

    def decode_mean(self, xb: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction of a prepared batch."""
        return self.net(xb)[0]

    def latent(self, xb: torch.Tensor) -> torch.Tensor:
        """The latent vector (the VAE: its mean) of a prepared batch."""
        return self.net.encode(xb)

    def _fit(self, data: FitData) -> None:
        x = data.x
        self.net.train()
        train_epochs(self.net.parameters(), x.shape[0], self.config, f"{self.method}: training",
                     lambda idx, g: self.loss(self.prepare(x[idx])))
        self.net.eval()

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of images in [0, 1] (at the network's side)."""
        self.net.eval()
        return torch.from_numpy(per_batch(x, 512, lambda b: self.decode_mean(self.prepare(b)))).float()

    def encode(self, x: torch.Tensor) -> np.ndarray:
        """Latent vectors of images in [0, 1], shape (N, latent)."""
        self.net.eval()
        return per_batch(x, 512, lambda b: self.latent(self.prepare(b)))

    def reconstruction_error(self, x: torch.Tensor) -> np.ndarray:
        """mean over pixels of (x - reconstruction)^2, per image."""
        self.net.eval()

        def err(b: torch.Tensor) -> torch.Tensor:
            xb = self.prepare(b)
            return per_image_mse(self.decode_mean(xb), xb)

        return per_batch(x, 512, err)

    def _score(self, x: torch.Tensor) -> np.ndarray:
        return self.reconstruction_error(x)
