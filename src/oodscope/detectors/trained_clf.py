"""What the detectors that train their own classifier share (``prior-net``, ``generalized-odin``,
``dgc``, ``layerwise-uncertainty``, ``oe-classifier``): labelled in-distribution images (and, for
some, known outliers), a network of the classifier's architectures (:func:`classifier_net`, the
settings of :data:`CLASSIFIER_DEFAULTS`) trained with the detector's own loss, and a score computed
from its taps. The training loop, batching of outliers, scoring in batches and the recorded
validation accuracy live here; each detector's file holds its loss, its score and its head.

Training: Adam at ``lr``, divided by 10 after 80 % of the steps (as :class:`Classifier`), for
``epochs`` passes over the in-distribution images in shuffled batches of ``batch_size``. A
detector that requires outliers gets ``oe_batch`` of them per step, drawn with replacement and,
with ``oe_augment``, randomly distorted (a few known outliers would otherwise be memorised); they
pass through the network in the same batch as the in-distribution images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.classifier import (CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_HELP, CLASSIFIER_PRESETS,
                                           PENULTIMATE, classifier_memory_format, classifier_net, train_augment)
from oodscope.training.core import adam_with_drop, batches, device_of, model_autocast, step
from oodscope.progress import progress
from oodscope.transforms.augment import random_affine

# settings of the outlier batches, for the trained detectors that require outliers
OE_DEFAULTS: dict[str, Any] = {"oe_batch": 128, "oe_augment": True}
OE_HELP: dict[str, str] = {
    "oe_batch": "outlier images per training step, drawn with replacement from the known outliers",
    "oe_augment": "randomly distort the drawn outliers (random affine), so that a few are not memorised",
}

Taps = dict[str, torch.Tensor]


class TrainedClassifierDetector(Detector):
    """Subclasses set ``method``, ``defaults`` (the classifier's plus their own) and implement
    :meth:`loss` and :meth:`score_of`; optionally :meth:`_head` (extra modules reading the taps),
    :meth:`forward` (a forward pass of their own), :meth:`logits_of` and :meth:`outputs_count`."""

    requires = Requires(labels=True)
    family = "classifier"
    defaults = CLASSIFIER_DEFAULTS
    help = {**CLASSIFIER_HELP, **OE_HELP}
    choices = CLASSIFIER_CHOICES
    presets = CLASSIFIER_PRESETS

    # -- construction ----------------------------------------------------------------------
    def _facts(self, data: FitData) -> dict[str, Any]:
        facts = super()._facts(data)
        facts["classes"] = int(data.labels.max()) + 1
        return facts

    def outputs_count(self) -> int:
        """Number of outputs of the network's last linear layer (default: the number of classes)."""
        return int(self.fitted["classes"])

    def _build(self) -> None:
        self.device = device_of(self.config["device"])
        self.net = classifier_net(self.config, self.fitted, self.outputs_count())
        self.memory = classifier_memory_format(self.config)
        self.net = self.net.to(self.device).to(memory_format=self.memory)
        with torch.no_grad():
            self.net.eval()
            probe = torch.zeros(2, self.fitted["channels"], *self.fitted["size"], device=self.device)
            self.tap_shapes = {k: tuple(v.shape[1:]) for k, v in self.net.taps(probe).items()}
        head = self._head()
        self.head = None if head is None else head.to(self.device)

    @property
    def penultimate(self) -> str:
        """Name of the tap the last linear layer reads."""
        return PENULTIMATE[self.config["arch"]]

    def _head(self) -> nn.Module | None:
        """Extra trainable modules reading the taps (built after the network; None: none)."""
        return None

    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net, **({"head": self.head} if self.head is not None else {})}

    # -- the subclass's method -------------------------------------------------------------
    def forward(self, xb: torch.Tensor) -> Taps:
        """Taps of the network on a normalised batch (override to change the forward pass)."""
        return self.net.taps(xb)

    def loss(self, taps: Taps, labels: torch.Tensor, outlier_taps: Taps | None) -> torch.Tensor:
        """The training loss of one batch (in-distribution taps and labels; the outliers' taps)."""
        raise NotImplementedError

    def score_of(self, taps: Taps) -> torch.Tensor:
        """One score per image of the batch, higher = more out-of-distribution."""
        raise NotImplementedError

    def logits_of(self, taps: Taps) -> torch.Tensor:
        """Class scores whose arg-max is the predicted class (default: the network's logits)."""
        return taps["logits"]

    # -- training --------------------------------------------------------------------------
    def taps(self, x: torch.Tensor, training: bool = False) -> Taps:
        """:meth:`forward` on images ``x`` in [0, 1] (normalised here), as float32 tensors computed
        in bfloat16 autocast while ``training`` with ``amp`` on, else in the model's ``precision``."""
        xb = self.normalize(x).to(self.device).contiguous(memory_format=self.memory)
        with model_autocast(self.device, self.config, training):
            return {k: v.float() for k, v in self.forward(xb).items()}

    def _trainable(self) -> list[nn.Parameter]:
        return [p for m in self._modules().values() for p in m.parameters()]

    def _fit(self, data: FitData) -> None:
        c = self.config
        g = torch.Generator().manual_seed(int(c["seed"]))
        x, labels, o = data.x, data.labels, data.outliers
        n, bs = x.shape[0], int(c["batch_size"])
        steps = int(c["epochs"]) * ((n + bs - 1) // bs)
        opt, sched = adam_with_drop(self._trainable(), c["lr"], steps, weight_decay=c["weight_decay"])
        self._train_mode(True)
        bar = progress(steps, f"{self.method}: training", c["progress"])
        for _ in range(int(c["epochs"])):
            for idx in batches(n, bs, g, shuffle=True):
                xb = train_augment(x[idx], c["augment"], g)
                k = len(idx)
                if o is not None:
                    ob = o[torch.randint(0, o.shape[0], (int(c["oe_batch"]),), generator=g)]
                    xb = torch.cat([xb, random_affine(ob, g) if c["oe_augment"] else ob])
                taps = self.taps(xb, training=True)
                inside = {t: v[:k] for t, v in taps.items()}
                outside = {t: v[k:] for t, v in taps.items()} if o is not None else None
                step(opt, sched, self.loss(inside, labels[idx].to(self.device), outside), bar)
        bar.close()
        self._train_mode(False)
        self._after_fit(data)
        if data.validation is not None and data.validation_labels is not None:
            pred = torch.from_numpy(self._outputs(data.validation)["logits"]).argmax(dim=1)
            self.fitted["val_accuracy"] = round(100 * float((pred == data.validation_labels).float().mean()), 4)

    def _train_mode(self, on: bool) -> None:
        for m in self._modules().values():
            m.train(on)

    def _after_fit(self, data: FitData) -> None:
        """Anything computed once the network is trained (e.g. statistics of the training images)."""

    # -- scoring ---------------------------------------------------------------------------
    def _outputs(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        self._train_mode(False)
        scores, logits = [], []
        with torch.no_grad():
            for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
                taps = self.taps(x[idx])
                scores.append(self.score_of(taps).double().cpu())
                logits.append(self.logits_of(taps).float().cpu())
        return {"score": torch.cat(scores).numpy(), "logits": torch.cat(logits).numpy()}
