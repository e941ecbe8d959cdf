"""Epoch-based training and batched evaluation shared by the one-class networks (ae, vae, alocc,
deep-svdd, deep-sad, goad), and the resizing of images to the sizes their networks are built for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.training.core import adam_with_drop, batches, step
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
    lr: float | None = None,
    epochs: int | None = None,
    drop_at: float = 1.0,
) -> None:
    """Adam (``lr``, ``weight_decay``) for ``epochs`` passes over ``n`` samples in shuffled batches
    of ``batch_size``; ``loss_of(indices, generator)`` gives a batch's loss. The learning rate is
    divided by 10 after the fraction ``drop_at`` of training (1.0: never)."""
    epochs = int(config["epochs"] if epochs is None else epochs)
    bs = int(config["batch_size"])
    g = torch.Generator().manual_seed(int(config["seed"]))
    total = epochs * ((n + bs - 1) // bs)
    opt, sched = adam_with_drop(params, float(config["lr"] if lr is None else lr), total, drop_at,
                                float(config.get("weight_decay", 0.0)))
    bar = progress(total, desc, config["progress"])
    for _ in range(epochs):
        for idx in batches(n, bs, g, shuffle=True):
            step(opt, sched, loss_of(idx, g), bar)
    bar.close()


def per_image_mse(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of (reconstruction - x)^2, one value per image."""
    return (reconstruction - x).pow(2).flatten(1).mean(dim=1)


@torch.no_grad()
def per_batch(x: torch.Tensor, batch_size: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """``fn`` applied to ``x`` batch by batch, concatenated, as float64."""
    out = [fn(x[idx]).double().cpu() for idx in batches(x.shape[0], batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0)
