"""What Deep SVDD and Deep SAD share (Ruff et al. 2018, 2020): the preprocessing, the autoencoder
pretraining of phi, the centre c, the training loop and the score ||phi(x) - c||^2.

Preprocessing (``preprocess="gcn"``, as in the papers): global contrast normalisation with the
l1 norm per image, x <- (x - mean(x)) / mean|x - mean(x)|, then min-max scaling to [0, 1] with the
minimum and maximum over the training images (``"none"``: the pixels as they are).

Centre: c = the mean of phi over the training images after the initial forward pass (after
pretraining, when enabled), with coordinates closer to 0 than ``eps`` pushed to +-``eps``
(a zero coordinate could be matched trivially by the bias-free network).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from oodscope.detectors.base import Detector, FitData
from oodscope.training.epochs import per_batch, train_epochs
from oodscope.training.core import device_of
from oodscope.errors import InputError
from oodscope.nets.svdd import SVDDDecoder, SVDDNet

SVDD_DEFAULTS: dict[str, Any] = {
    "widths": [],
    "rep_dim": 0,
    "preprocess": "gcn",
    "pretrain": True,
    "pretrain_epochs": 20,
    "epochs": 30,
    "batch_size": 200,
    "lr": 1e-3,
    "pretrain_lr": 1e-3,
    "weight_decay": 5e-7,
    "lr_milestone": 0.7,
    "pretrain_milestone": 0.7,
    "seed": 0,
    "device": "cpu",
    "progress": True,
}

SVDD_HELP: dict[str, str] = {
    "widths": "maps of the conv blocks; [] = the paper's: [8, 4] for grey images, [32, 64, 128] for RGB",
    "rep_dim": "dimensions of phi(x); 0 = the paper's: 32 for grey images, 128 for RGB",
    "preprocess": '"gcn" (global contrast normalisation, l1, then min-max scaling) or "none"',
    "pretrain": "pretrain phi as the encoder of an autoencoder",
    "pretrain_epochs": "epochs of the autoencoder pretraining",
    "epochs": "epochs of training phi towards the centre",
    "batch_size": "images per training batch",
    "lr": "Adam's learning rate (the papers' 1e-4 needs their 250-400 epochs; 1e-3 is better here: lab notebook)",
    "pretrain_lr": "Adam's learning rate of the pretraining",
    "weight_decay": "Adam's weight decay (L2 penalty) of phi",
    "lr_milestone": "fraction of training after which the learning rate drops tenfold",
    "pretrain_milestone": "fraction of pretraining after which its learning rate drops tenfold",
}

SVDD_CHOICES: dict[str, tuple[Any, ...]] = {"preprocess": ("gcn", "none")}

# paper: Ruff et al. (2018), section 4: Adam at 1e-4, then 1e-5; the autoencoder 250 + 100 epochs,
# Deep SVDD 150 + 100 epochs, batch 200.
SVDD_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"pretrain_epochs": 350, "pretrain_milestone": 250 / 350, "epochs": 250, "lr_milestone": 150 / 250,
              "lr": 1e-4, "pretrain_lr": 1e-4, "device": "cuda"},
    "smoke": {"pretrain_epochs": 1, "epochs": 1},
    "demo": {"pretrain_epochs": 20, "epochs": 30, "batch_size": 64},
}

CENTER_EPS = 0.1
PAPER_NETS = {1: ([8, 4], 32), 3: ([32, 64, 128], 128)}  # channels -> (widths, rep_dim), Ruff et al. 2018


def network_shape(config: dict[str, Any], channels: int) -> tuple[tuple[int, ...], int]:
    """The conv widths and representation size: the settings, or the paper's for ``channels``."""
    widths, rep = PAPER_NETS.get(channels, PAPER_NETS[3])
    return tuple(config["widths"] or widths), int(config["rep_dim"] or rep)


class SVDDModel(nn.Module):
    """phi and the centre c (a buffer, saved with the weights)."""

    def __init__(self, phi: SVDDNet) -> None:
        super().__init__()
        self.phi = phi
        self.register_buffer("c", torch.zeros(phi.fc.out_features))

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """||phi(x) - c||^2 per image."""
        return (self.phi(x) - self.c).pow(2).sum(dim=1)


def gcn_l1(x: torch.Tensor) -> torch.Tensor:
    """Global contrast normalisation with the l1 norm, per image."""
    centred = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return centred / centred.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)


class SVDDBase(Detector):
    """Deep SVDD's network, preprocessing, pretraining and score; subclasses give the loss."""

    defaults = SVDD_DEFAULTS
    help = SVDD_HELP
    choices = SVDD_CHOICES
    presets = SVDD_PRESETS

    def _check_config(self) -> None:
        c = self.config
        if not all(isinstance(w, int) and w >= 1 for w in c["widths"]) or int(c["rep_dim"]) < 0:
            raise InputError(f"{self.method}: widths must be positive and rep_dim non-negative (0: the paper's)")
        for key in ("lr_milestone", "pretrain_milestone"):
            if not 0 < c[key] <= 1:
                raise InputError(f"{self.method}: {key} must be in (0, 1], got {c[key]}")

    def _build(self) -> None:
        c = self.config
        self.device = device_of(c["device"])
        self.widths, rep_dim = network_shape(c, self.fitted["channels"])
        scale = 2 ** len(self.widths)
        if any(side % scale for side in self.fitted["size"]):
            h, w = self.fitted["size"]
            raise InputError(f"{self.method}: with {len(self.widths)} pooling blocks the image sides must be divisible "
                             f"by {scale}, got {h}x{w}; resize the images or set widths")
        phi = SVDDNet(self.fitted["channels"], tuple(self.fitted["size"]), self.widths, rep_dim)
        self.model = SVDDModel(phi).to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"svdd": self.model}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The preprocessed images, on the network's device."""
        if self.config["preprocess"] == "gcn":
            lo, hi = self.fitted["gcn_min"], self.fitted["gcn_max"]
            x = (gcn_l1(x) - lo) / max(hi - lo, 1e-8)
        return x.to(self.device)

    def _fit(self, data: FitData) -> None:
        x = data.x
        if self.config["preprocess"] == "gcn":
            g = per_batch(x, 2048, gcn_l1)
            self.fitted["gcn_min"], self.fitted["gcn_max"] = float(g.min()), float(g.max())
        inputs, targets = self.training_set(data)
        if self.config["pretrain"]:
            self._pretrain(inputs)
        self._init_center(x)
        self._train(inputs, targets)

    def training_set(self, data: FitData) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and semi-supervised targets (0 unlabelled, -1 labelled anomaly); Deep SVDD: all 0."""
        return data.x, torch.zeros(data.x.shape[0])

    def _pretrain(self, x: torch.Tensor) -> None:
        c = self.config
        phi = self.model.phi
        decoder = SVDDDecoder(self.fitted["channels"], phi.grid, self.widths, phi.fc.out_features).to(self.device)

        def loss_of(idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            xb = self.prepare(x[idx])
            return (decoder(phi(xb)) - xb).pow(2).flatten(1).sum(dim=1).mean()

        phi.train()
        decoder.train()
        train_epochs(list(phi.parameters()) + list(decoder.parameters()), x.shape[0], c, f"{self.method}: pretraining",
                     loss_of, lr=c["pretrain_lr"], epochs=c["pretrain_epochs"], drop_at=c["pretrain_milestone"])

    @torch.no_grad()
    def _init_center(self, x: torch.Tensor) -> None:
        self.model.phi.eval()
        z = torch.from_numpy(per_batch(x, 1024, lambda b: self.model.phi(self.prepare(b)))).float()
        center = z.mean(dim=0)
        small = center.abs() < CENTER_EPS
        center[small] = torch.where(center[small] < 0, -CENTER_EPS, CENTER_EPS)
        self.model.c.copy_(center.to(self.device))

    def loss(self, dist: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The batch loss from the squared distances and the targets."""
        return dist.mean()

    def _train(self, x: torch.Tensor, targets: torch.Tensor) -> None:
        c = self.config
        phi = self.model.phi

        def loss_of(idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            return self.loss(self.model.distance(self.prepare(x[idx])), targets[idx].to(self.device))

        phi.train()
        train_epochs(phi.parameters(), x.shape[0], c, f"{self.method}: training", loss_of,
                     drop_at=c["lr_milestone"])
        phi.eval()

    def embed(self, x: torch.Tensor) -> np.ndarray:
        """phi(x), shape (N, rep_dim)."""
        self.model.eval()
        return per_batch(x, 1024, lambda b: self.model.phi(self.prepare(b)))

    def _score(self, x: torch.Tensor) -> np.ndarray:
        self.model.eval()
        return per_batch(x, 1024, lambda b: self.model.distance(self.prepare(b)))
