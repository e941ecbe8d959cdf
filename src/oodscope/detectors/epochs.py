"""Epoch-based training and batched evaluation shared by the one-class networks (ae, vae, alocc,
deep-svdd, deep-sad, goad), and the resizing of images to the sizes their networks are built for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.detectors.training import batches, step
from oodscope.progress import progress


def work_size(size: list[int] | tuple[int, int], sizes: tuple[int, ...] = (28, 32)) -> int:
    """The side of the square images a fixed-size network reads: the image's own side when it is
    one of ``sizes``, otherwise the smallest of ``sizes`` that is at least as large (or the largest)."""
    h, w = int(size[0]), int(size[1])
    if h == w and h in sizes:
        return h
    bigger = [s for s in sizes if s >= max(h, w)]
    return min(bigger) if bigger else max(sizes)


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """Images resized (bilinear) to ``side`` x ``side``; unchanged when they already are."""
    if tuple(x.shape[-2:]) == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)


def train_epochs(
    params: Any,
    n: int,
    config: dict[str, Any],
    desc: str,
    loss_of: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    on_epoch: Callable[[int], None] | None = None,
    lr: float | None = None,
    epochs: int | None = None,
    milestones: tuple[float, ...] = (),
) -> None:
    """Adam (``lr``, ``weight_decay``) for ``epochs`` passes over ``n`` samples in shuffled batches
    of ``batch_size``; ``loss_of(indices, generator)`` gives a batch's loss. The learning rate is
    divided by 10 at each fraction of training in ``milestones``. ``on_epoch(e)`` is called after
    each epoch (1-based)."""
    epochs = int(config["epochs"] if epochs is None else epochs)
    bs = int(config["batch_size"])
    g = torch.Generator().manual_seed(int(config["seed"]))
    per_epoch = (n + bs - 1) // bs
    opt = torch.optim.Adam(params, lr=float(config["lr"] if lr is None else lr),
                           weight_decay=float(config.get("weight_decay", 0.0)))
    steps = [max(1, int(m * epochs * per_epoch)) for m in milestones]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=0.1)
    bar = progress(epochs * per_epoch, desc, config["progress"])
    for e in range(epochs):
        for idx in batches(n, bs, g, shuffle=True):
            step(opt, sched, loss_of(idx, g), bar)
        if on_epoch is not None:
            on_epoch(e + 1)
    bar.close()


@torch.no_grad()
def per_batch(x: torch.Tensor, batch_size: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """``fn`` applied to ``x`` batch by batch, concatenated, as float64."""
    out = [fn(x[idx]).double().cpu() for idx in batches(x.shape[0], batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0)
