"""GEOM's network f (Golan & El-Yaniv, NeurIPS 2018): a classifier of which of K geometric
transformations T_1..T_K (flips, translations, rotations) was applied to an in-distribution image.

``amp`` is the precision of training (bfloat16 autocast by default), ``precision`` that of the
taps and scores of the trained f ("float32" by default; "bfloat16" autocast as an opt-in).

Trained with cross-entropy on (T_y x, y), y drawn uniformly (eq. (1) of Okamoto et al. 2021;
Algorithm 1, first loop). It is an upstream network: ``geom`` scores with it, ``layers`` reads its
intermediate layers, and a benchmark trains it once per (class, seed, settings) for both.
GEOM+ trains its own with outlier exposure (``fit(..., outliers=o, outlier_weight=w)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.training import distributed
from oodscope.upstream import tap_memo
from oodscope.upstream.graph import TransformSum
from oodscope.training.core import (adam_with_drop, autocast, device_of, memory_format, scoring_autocast, step,
                                         sum_over_transforms)
from oodscope.upstream.base import Upstream
from oodscope.errors import InputError
from oodscope.precision import PRECISIONS
from oodscope.nets import Backbone, build_backbone
from oodscope.progress import progress
from oodscope.transforms import TRANSFORM_SETS, GeometricTransforms
from oodscope.transforms.augment import cifar_augment

GEOM_DEFAULTS: dict[str, Any] = {
    "backbone": "small",
    "widths": [16, 32, 64],
    "depth": 16,
    "width": 4,
    "dropout": 0.0,
    "transforms": "flip-rot4",
    "augment": "none",
    "epochs": 15,  # was 6: too few off MNIST (docs/lab/BENCHMARKS.md)
    "batch_size": 128,
    "lr": 1e-3,
    "amp": True,
    "precision": "float32",
    "seed": 0,
    "device": "cpu",
    "progress": True,
}

# One line per setting (oodscope describe; the documentation's catalogue).
GEOM_HELP: dict[str, str] = {
    "backbone": '"small" (CPU-fast residual CNN) or "wrn" (Wide-ResNet) as f',
    "widths": "small backbone: its three group widths",
    "depth": "wrn: depth of the Wide-ResNet (16: WRN-16-k)",
    "width": "wrn: width factor k of the Wide-ResNet",
    "dropout": "dropout probability in f (0: none)",
    "transforms": 'the K transformations: "rot4" (4 rotations), "flip-rot4" (8, with flips) or "geom72" (the paper: 72)',
    "augment": '"none", or "cifar": the CIFAR training augmentation of section 4.1 (crop, jitter, gray, blur)',
    "epochs": "passes over the training images, one random transformation per image per pass",
    "batch_size": "images per training batch (scoring batches hold four times as many)",
    "lr": "Adam's learning rate, divided by 10 after 80 % of the steps",
    "amp": "train under bfloat16 autocast (about twice as fast on a CPU)",
    "precision": 'scoring: "float32", or "bfloat16" autocast (faster, scores rounded; not exported to ONNX)',
    "seed": "random seed: initial weights, batch order, drawn transformations",
    "device": '"cpu", "cuda", "cuda:N" or "auto" (a GPU when there is one)',
    "progress": "show progress bars while training",
}

GEOM_CHOICES: dict[str, tuple[Any, ...]] = {
    "backbone": ("small", "wrn"),
    "transforms": tuple(TRANSFORM_SETS),
    "augment": ("none", "cifar"),
    "precision": PRECISIONS,
}

# cpu: the defaults; paper: Okamoto et al. (2021) section 4.1, WRN-16-4 with dropout 0.3, the 72
# transformations, 20 epochs, on CUDA; smoke: tiny, for tests; demo: sized for 8x8 digits.
GEOM_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"backbone": "wrn", "depth": 16, "width": 4, "dropout": 0.3, "transforms": "geom72", "epochs": 20,
              "batch_size": 128, "lr": 1e-3, "device": "cuda"},
    "smoke": {"widths": [8, 8, 8], "epochs": 1, "transforms": "rot4"},
    "demo": {"widths": [16, 32, 64], "epochs": 60, "batch_size": 64, "transforms": "flip-rot4"},
}


class GeomNet(Upstream):
    """f: a backbone with taps z1..z4 and K outputs, one per transformation."""

    kind = "geom-f"
    defaults = GEOM_DEFAULTS
    help = GEOM_HELP
    choices = GEOM_CHOICES
    prefix = "f"

    def _build(self) -> None:
        c = self.settings
        if c["backbone"] == "small" and len(c["widths"]) != 3:
            raise InputError(f"{self.kind}: widths must name 3 group widths, got {c['widths']}")
        self.transforms = GeometricTransforms(c["transforms"])
        kw = {"widths": tuple(c["widths"]), "dropout": c["dropout"]} if c["backbone"] == "small" else {
            "depth": c["depth"], "width": c["width"], "dropout": c["dropout"]}
        self.device = device_of(c["device"])
        self.net: Backbone = build_backbone(c["backbone"], self.fitted["channels"], len(self.transforms), **kw).to(self.device)
        self.memory = memory_format(c["widths"] if c["backbone"] == "small" else None)
        self.net = self.net.to(memory_format=self.memory)

    def _fit(self, x: torch.Tensor, labels: torch.Tensor | None, validation: torch.Tensor | None,
             validation_labels: torch.Tensor | None, outliers: torch.Tensor | None = None,
             outlier_weight: float = 0.0, desc: str = "geom: training f") -> None:
        """Cross-entropy on (T_y x, y), y uniform. With ``outlier_weight`` > 0 (GEOM+), the outputs
        on transformed outliers are also pulled towards the uniform distribution."""
        c = self.settings
        g = torch.Generator().manual_seed(distributed.rank_seed(int(c["seed"])))
        torch.manual_seed(int(c["seed"]))
        k = len(self.transforms)
        n, bs = x.shape[0], int(c["batch_size"])
        steps = int(c["epochs"]) * distributed.steps_per_epoch(n, bs)
        opt, sched = adam_with_drop(self.net.parameters(), c["lr"], steps)
        self.net.train()
        model = distributed.wrap(self.net, self.device)  # DDP under torchrun, else the network itself
        bar = progress(steps, desc, c["progress"] and distributed.is_main())
        for epoch in range(int(c["epochs"])):
            for idx in distributed.epoch_batches(n, bs, g, epoch, int(c["seed"])):
                xb = self.augment(x[idx], g)
                xb = self.normalize(xb).to(self.device)
                y = torch.randint(0, k, (len(idx),), generator=g).to(self.device)
                xb = self.transforms.apply(xb, y).contiguous(memory_format=self.memory)
                with autocast(self.device, c["amp"]):
                    loss = F.cross_entropy(model(xb).float(), y)
                    if outliers is not None and outlier_weight > 0:
                        oi = torch.randint(0, outliers.shape[0], (len(idx),), generator=g)
                        ob = self.normalize(outliers[oi]).to(self.device)
                        yo = torch.randint(0, k, (len(idx),), generator=g).to(self.device)
                        ob = self.transforms.apply(ob, yo).contiguous(memory_format=self.memory)
                        lo = -F.log_softmax(model(ob).float(), dim=1).mean(dim=1).mean()
                        loss = loss + outlier_weight * lo
                step(opt, sched, loss, bar)
        bar.close()
        distributed.average_buffers(self.net)
        self.net.eval()

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training-time augmentation of in-distribution images in [0, 1] (the ``augment`` setting)."""
        if self.settings["augment"] == "cifar":
            if x.shape[1] != 3:
                raise InputError("augment='cifar' needs RGB images")
            return cifar_augment(x, generator)
        return x

    @torch.no_grad()
    def taps(self, xt: torch.Tensor, need: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Taps z1..z4 and logits of the frozen f on an already normalised and transformed batch.

        ``need``: the taps the caller reads (then only those are returned); inside
        :func:`~oodscope.upstream.tap_memo.open_memo` they are kept, and f's pass is skipped when
        this f was already given this batch."""
        precision = self.settings["precision"]

        def run() -> dict[str, torch.Tensor]:
            with scoring_autocast(self.device, precision):
                return self.net.taps(xt.contiguous(memory_format=self.memory))

        memo = tap_memo.current()
        if need is None:
            return run()
        if memo is None:
            found = run()
            return {n: found[n] for n in need}
        return memo.taps(self.net, xt, need, run, precision)

    def geom_score(self, x: torch.Tensor) -> np.ndarray:
        """GEOM's score of images ``x`` in [0, 1]: -sum_j softmax_j(f(T_j x)), higher = more OOD."""
        self.net.eval()

        def term(xt: torch.Tensor, k: int) -> torch.Tensor:
            return torch.softmax(self.taps(xt, need=("logits",))["logits"].float(), dim=1)[:, k]

        bs = 4 * int(self.settings["batch_size"])
        return -sum_over_transforms(x, self.normalize, self.device, self.transforms, bs, term)

    def geom_graph(self) -> torch.nn.Module:
        """:meth:`geom_score` as one module (:class:`~oodscope.upstream.graph.TransformSum`), for export."""
        def term(parts: dict[str, torch.nn.Module], xt: torch.Tensor, k: int) -> torch.Tensor:
            return torch.softmax(parts["f"](xt), dim=1)[:, k]

        return TransformSum({"f": self.net}, self.transforms, self.fitted, term, torch.neg)
