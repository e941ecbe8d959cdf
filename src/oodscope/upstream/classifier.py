"""A multi-class classifier of the in-distribution classes: the upstream network of the
classifier-based detectors (``msp`` and those that read logits or features post hoc).

Trained with cross-entropy on the labelled in-distribution images (Adam, learning rate divided by
10 after 80 % of the steps, as the other networks of oodscope). ``arch`` selects a LeNet-style CNN
(the CPU default; about 99 % test accuracy on MNIST), the small residual CNN or a Wide-ResNet.
After training, its accuracy on the validation images (when given) is recorded with it.

With ``adversarial`` = "pgd" it is trained adversarially (Takahashi's lecture notes "Deep learning:
reliability of inference", University of Aizu, n.d.; Madry et al.,
"Towards deep learning models resistant to adversarial attacks", ICLR 2018): every batch is
replaced by PGD examples of the current network within the L∞ ball ``adv_eps`` (grown linearly
over the first ``adv_warmup`` of training); "fgsm-rs" uses one FGSM step from a random start
instead (Wong, Rice & Kolter, ICLR 2020). With "ibp" it is trained to be certifiably robust
(Gowal et al. 2018, :mod:`oodscope.verify.ibp_training`): the loss mixes the cross-entropy of
the clean logits and of the worst-case logits that interval bound propagation gives over the ball,
``κ CE(z, y) + (1 − κ) CE(ẑ, y)``, with the radius ramping from 0 to ``adv_eps`` and ``κ`` from
1 to 0.5 over the warm-up, in float32 whatever ``amp`` says (LeNet only: the layers the verifiers
accept; ``adv_steps`` and ``adv_alpha`` are unused). ``differentiable()`` gives the network as
a function of the image for :mod:`oodscope.adversarial`.

``amp`` is the precision of training (bfloat16 autocast, on by default: about twice as fast on
this kind of CPU); ``precision`` that of everything the trained network computes afterwards
(logits, taps, the scores of every detector reading it): "float32" by default, "bfloat16" autocast
as an opt-in that the model records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from oodscope.adversarial import ADVERSARIAL_KINDS, adversarial_batch
from oodscope.training import distributed
from oodscope.training.core import adam_with_drop, autocast, batches, device_of, memory_format, scoring_autocast, step
from oodscope.upstream.base import Upstream
from oodscope.errors import InputError
from oodscope.precision import PRECISIONS
from oodscope.nets import LeNet, build_backbone
from oodscope.progress import progress
from oodscope.transforms.augment import cifar_augment
from oodscope.verify.ibp_training import ibp_loss, ibp_modules, ibp_schedule

CLASSIFIER_DEFAULTS: dict[str, Any] = {
    "arch": "lenet",
    "widths": [32, 64],
    "hidden": 128,
    "depth": 16,
    "width": 4,
    "dropout": 0.0,
    "augment": "none",
    "epochs": 5,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "amp": True,
    "precision": "float32",
    "seed": 0,
    "device": "cpu",
    "progress": True,
    "adversarial": "none",  # adversarial training: oodscope.adversarial.training; ibp: oodscope.verify.ibp_training
    "adv_eps": 0.3,
    "adv_steps": 10,
    "adv_alpha": 0.0,
    "adv_warmup": 0.2,
}

# One line per setting (oodscope describe; the documentation's catalogue).
CLASSIFIER_HELP: dict[str, str] = {
    "arch": '"lenet" (LeNet-style CNN, the CPU default), "small" (residual CNN) or "wrn" (Wide-ResNet)',
    "widths": "lenet: its two convolution widths; small: its three group widths",
    "hidden": "lenet: width of the hidden fully connected layer",
    "depth": "wrn: depth of the Wide-ResNet (16: WRN-16-k)",
    "width": "wrn: width factor k of the Wide-ResNet",
    "dropout": "dropout probability in the classifier (0: none)",
    "augment": '"none", or "cifar": random crop, colour jitter, grayscale and blur while training (RGB images)',
    "epochs": "passes over the labelled training images",
    "batch_size": "images per training batch (scoring batches hold four times as many)",
    "lr": "Adam's learning rate, divided by 10 after 80 % of the steps",
    "weight_decay": "Adam's weight decay (L2 penalty)",
    "amp": "train under bfloat16 autocast (about twice as fast on a CPU)",
    "precision": 'scoring: "float32", or "bfloat16" autocast (faster, scores rounded; not exported to ONNX)',
    "seed": "random seed: initial weights, batch order, drawn samples",
    "device": '"cpu", "cuda", "cuda:N" or "auto" (a GPU when there is one)',
    "progress": "show progress bars while training",
    "adversarial": '"none"; adversarial training: "pgd" or "fgsm-rs"; "ibp": certified training with interval bounds',
    "adv_eps": "adversarial training: L∞ radius, in pixels in [0, 1]",
    "adv_steps": "pgd: attack steps per training batch",
    "adv_alpha": "attack step size; 0 = 2.5 eps / steps for pgd (Madry et al.), 1.25 eps for fgsm-rs (Wong et al.)",
    "adv_warmup": "share of the training steps over which eps grows linearly from 0 (ibp: kappa falls from 1 to 0.5)",
}

# the attacks of adversarial_batch, and certified training (a loss of its own, not a batch of examples)
TRAINING_KINDS: tuple[str, ...] = (*ADVERSARIAL_KINDS, "ibp")

CLASSIFIER_CHOICES: dict[str, tuple[Any, ...]] = {"arch": ("lenet", "small", "wrn"), "augment": ("none", "cifar"),
                                                  "adversarial": TRAINING_KINDS, "precision": PRECISIONS}

# settings added after cached networks were written: at their default they stay out of the cache key
LATE_SETTINGS: tuple[str, ...] = ("adversarial", "adv_eps", "adv_steps", "adv_alpha", "adv_warmup")

# paper: a Wide-ResNet-16-4 with dropout 0.3 on a GPU, as in the classifier-based OOD papers.
CLASSIFIER_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"arch": "wrn", "depth": 16, "width": 4, "dropout": 0.3, "epochs": 30, "device": "cuda"},
    "smoke": {"widths": [4, 8], "hidden": 16, "epochs": 1},
    "demo": {"widths": [16, 32], "hidden": 64, "epochs": 30, "batch_size": 64},
}

# an adversarially trained LeNet for MNIST at eps 0.3 (Madry et al.'s model has a 1024-wide hidden layer)
ROBUST_SETTINGS: dict[str, Any] = {"hidden": 1024, "adversarial": "pgd", "adv_eps": 0.3, "adv_steps": 10, "epochs": 8}


def classifier_net(settings: dict[str, Any], fitted: dict[str, Any], outputs: int | None = None) -> torch.nn.Module:
    """The untrained network ``settings["arch"]`` for images of ``fitted["channels"]`` and
    ``fitted["size"]``, with ``outputs`` logits (default ``fitted["classes"]``). Its ``taps(x)``
    give the intermediate feature maps, the penultimate vector (:data:`PENULTIMATE`) and the logits."""
    c, f = settings, fitted
    k = int(f["classes"] if outputs is None else outputs)
    if c["arch"] == "lenet":
        if len(c["widths"]) != 2:
            raise InputError(f"classifier: lenet needs 2 widths, got {c['widths']}")
        return LeNet(f["channels"], k, tuple(f["size"]), tuple(c["widths"]), c["hidden"], c["dropout"])
    if c["arch"] == "small":
        if len(c["widths"]) != 3:
            raise InputError(f"classifier: small needs 3 widths, got {c['widths']}")
        return build_backbone("small", f["channels"], k, widths=tuple(c["widths"]), dropout=c["dropout"])
    return build_backbone("wrn", f["channels"], k, depth=c["depth"], width=c["width"], dropout=c["dropout"])


def train_augment(x: torch.Tensor, augment: str, generator: torch.Generator) -> torch.Tensor:
    """A training batch as the ``augment`` setting distorts it: unchanged for "none"; random crop,
    colour jitter, grayscale and blur for "cifar" (RGB images only)."""
    if augment == "none":
        return x
    if x.shape[1] != 3:
        raise InputError(f"augment={augment!r} needs RGB images")
    return cifar_augment(x, generator)


# the tap holding the vector the last linear layer reads, per architecture
PENULTIMATE: dict[str, str] = {"lenet": "z3", "small": "z4", "wrn": "z4"}


def classifier_memory_format(settings: dict[str, Any]) -> torch.memory_format:
    """The memory format of a classifier with these settings (:func:`~oodscope.training.core.memory_format`:
    a Wide-ResNet is wide enough; the small nets are judged by their widths)."""
    return memory_format(None if settings["arch"] == "wrn" else settings["widths"])


class Classifier(Upstream):
    """Class logits of in-distribution images; ``fitted["classes"]`` is the number of classes."""

    kind = "classifier"
    defaults = CLASSIFIER_DEFAULTS
    help = CLASSIFIER_HELP
    choices = CLASSIFIER_CHOICES
    needs_labels = True
    prefix = "clf"
    late_settings = LATE_SETTINGS
    takes_user_models = True  # the post-hoc detectors read a user's classifier as they read this one

    def _facts(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        return {"classes": int(labels.max()) + 1}

    def _build(self) -> None:
        self.device = device_of(self.settings["device"])
        self.memory = classifier_memory_format(self.settings)
        self.net = classifier_net(self.settings, self.fitted).to(self.device).to(memory_format=self.memory)

    def _fit(self, x: torch.Tensor, labels: torch.Tensor | None, validation: torch.Tensor | None,
             validation_labels: torch.Tensor | None, **extra: Any) -> None:
        c = self.settings
        g = torch.Generator().manual_seed(distributed.rank_seed(int(c["seed"])))
        n, bs = x.shape[0], int(c["batch_size"])
        steps = int(c["epochs"]) * distributed.steps_per_epoch(n, bs)
        opt, sched = adam_with_drop(self.net.parameters(), c["lr"], steps, weight_decay=c["weight_decay"])
        self.net.train()
        adv = c["adversarial"]
        if adv == "ibp" and distributed.active():
            raise InputError("classifier: certified (IBP) training runs in one process, not under torchrun")
        bar = progress(steps, "classifier: training" + ("" if adv == "none" else f" ({adv}, eps {c['adv_eps']})"),
                       c["progress"] and distributed.is_main())
        # the attacks of adversarial training are part of training: in its precision (bfloat16 under
        # ``amp``), as the adversarial models of the lab notebook were trained, not the scoring one
        model, done = self.differentiable(amp=bool(c["amp"])), 0
        layers = ibp_modules(self.net) if adv == "ibp" else None  # refuses networks the verifiers do not accept
        train_net = distributed.wrap(self.net, self.device)  # DDP under torchrun, else the network itself
        for epoch in range(int(c["epochs"])):
            for idx in distributed.epoch_batches(n, bs, g, epoch, int(c["seed"])):
                xb, yb = train_augment(x[idx], c["augment"], g).to(self.device), labels[idx].to(self.device)
                step(opt, sched, self._batch_loss(xb, yb, done, steps, model, layers, g, train_net), bar)
                done += 1
        bar.close()
        distributed.average_buffers(self.net)
        self.net.eval()
        if validation is not None and validation_labels is not None:
            pred = self.logits(validation).argmax(dim=1)
            self.fitted["val_accuracy"] = round(100 * float((pred == validation_labels).float().mean()), 4)

    def _batch_loss(self, xb: torch.Tensor, yb: torch.Tensor, done: int, steps: int, model: Callable[[torch.Tensor], torch.Tensor],
                    layers: list[torch.nn.Module] | None, g: torch.Generator, net: torch.nn.Module) -> torch.Tensor:
        """The training loss of batch ``(xb, yb)`` at step ``done`` of ``steps``: certified (IBP,
        float32, on the network's ``layers``), or the cross-entropy of ``net`` (the network, or it
        in DDP) on the batch, replaced by adversarial examples of ``model`` when ``adversarial``
        asks for them."""
        c = self.settings
        if layers is not None:
            eps, kappa = ibp_schedule(done, steps, float(c["adv_warmup"]), float(c["adv_eps"]))
            xb = xb.contiguous(memory_format=self.memory)
            return ibp_loss(layers, xb, yb, eps, kappa, self.fitted["mean"], self.fitted["std"])
        if c["adversarial"] != "none":
            eps = float(c["adv_eps"]) * min(1.0, (done + 1) / max(1.0, c["adv_warmup"] * steps))
            xb = adversarial_batch(model, self.net, xb, yb, c["adversarial"], eps, self.adv_alpha(eps), int(c["adv_steps"]), g)
        with autocast(self.device, c["amp"]):
            return F.cross_entropy(net(self.normalize(xb).contiguous(memory_format=self.memory)).float(), yb)

    def adv_alpha(self, eps: float) -> float:
        """The adversarial training step size at radius ``eps``."""
        c = self.settings
        if c["adv_alpha"] > 0:
            return float(c["adv_alpha"])
        return 1.25 * eps if c["adversarial"] == "fgsm-rs" else 2.5 * eps / max(1, int(c["adv_steps"]))

    def differentiable(self, amp: bool | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> logits`` for images in [0, 1] on the network's device, differentiable in ``x``
        (what :mod:`oodscope.adversarial` attacks): in the model's scoring ``precision`` (the
        network as it is deployed), or bfloat16 autocast when ``amp`` is True, float32 when False."""
        use = self.settings["precision"] == "bfloat16" if amp is None else amp

        def model(x: torch.Tensor) -> torch.Tensor:
            xb = self.normalize(x.to(self.device)).contiguous(memory_format=self.memory)
            with autocast(self.device, use):
                return self.net(xb).float()

        return model

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (float32, on the CPU) of images ``x`` in [0, 1], computed in the model's ``precision``."""
        self.net.eval()
        out = []
        for idx in batches(x.shape[0], 4 * int(self.settings["batch_size"])):
            xb = self.normalize(x[idx]).to(self.device).contiguous(memory_format=self.memory)
            with scoring_autocast(self.device, self.settings["precision"]):
                out.append(self.net(xb).float().cpu())
        return torch.cat(out)

    def taps(self, x: torch.Tensor, dropout: bool = False, precision: str | None = None) -> dict[str, torch.Tensor]:
        """The network's taps (feature maps ``z1``..., the penultimate vector, ``logits``) on one batch
        of images ``x`` in [0, 1], as float32 tensors computed in the model's ``precision`` (or the
        one given), on the network's device, with gradients when enabled (post hoc detectors that
        perturb their input need them). ``dropout``: its dropout layers stay stochastic (MC
        dropout); otherwise the network is in evaluation mode."""
        self.net.eval()
        if dropout:
            for m in self.net.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
        try:
            xb = self.normalize(x).to(self.device).contiguous(memory_format=self.memory)
            with scoring_autocast(self.device, precision or self.settings["precision"]):
                return {k: v.float() for k, v in self.net.taps(xb).items()}
        finally:
            self.net.eval()

    @property
    def tap_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each tap for one image (without the batch axis), ``logits`` included, in the
        network's order; probed once on blank images and kept."""
        if getattr(self, "_tap_shapes", None) is None:
            probe = torch.zeros(2, self.fitted["channels"], *self.fitted["size"])
            with torch.no_grad():
                self._tap_shapes = {k: tuple(v.shape[1:]) for k, v in self.taps(probe).items()}
        return self._tap_shapes

    @property
    def head(self) -> torch.nn.Module:
        """The last linear layer (``fc``: it reads the :attr:`penultimate` tap; its weight and bias)."""
        return getattr(self.net, "module", self.net).fc

    @property
    def penultimate(self) -> str:
        """Name of the tap the last linear layer reads."""
        return PENULTIMATE[self.settings["arch"]]

    def summary(self) -> dict[str, Any]:
        return {k: self.fitted[k] for k in ("classes", "val_accuracy") if k in self.fitted}
