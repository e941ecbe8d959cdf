"""Shared training plumbing: seeding, devices, bf16 autocast, the precision scores are computed in,
batching, the paper's Adam schedule."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.training.distributed import local_device
from oodscope.progress import progress
from oodscope.transforms import GeometricTransforms


# Settings of g_theta (``LayerHead``) and its BCE training, shared by ``bce`` and ``layers``.
HEAD_DEFAULTS: dict[str, Any] = {
    "head_width": 64,
    "head_hidden": 1024,
    "head_dropout": 0.0,
    "g_steps": 300,
    "g_batch": 128,
    "g_lr": 1e-3,
    "g_weight_decay": 0.0,
}

# One line per setting of HEAD_DEFAULTS (oodscope describe; the documentation's catalogue).
HEAD_HELP: dict[str, str] = {
    "head_width": "g_theta: channels of each convolution block reading a feature map (Table 1: 64)",
    "head_hidden": "g_theta: width of its hidden fully connected layer (Table 1: 1024)",
    "head_dropout": "g_theta: dropout probability before its linear layers (0: none)",
    "g_steps": "Adam steps training g_theta (the paper: 5000), learning rate divided by 10 after 80 %",
    "g_batch": "images per step of g_theta, half in-distribution, half outliers",
    "g_lr": "g_theta's Adam learning rate",
    "g_weight_decay": "g_theta's Adam weight decay (L2 penalty)",
}

# Presets of g_theta's settings (Okamoto et al. 2021: 5000 steps), composed into those of bce and layers.
HEAD_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"g_steps": 5000},
    "smoke": {"g_steps": 5},
    "demo": {"g_steps": 200, "g_batch": 64, "head_hidden": 256},
}


def merge_presets(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Presets of a detector composed from those of its parts (later parts win)."""
    names = dict.fromkeys(name for part in parts for name in part)
    return {name: {k: v for part in parts for k, v in part.get(name, {}).items()} for name in names}


def device_of(name: str) -> torch.device:
    """The torch device for a setting value: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (under
    torchrun, ``cuda`` is the process's own GPU)."""
    if name == "auto":
        return local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return local_device(torch.device(name))


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast; on this kind of CPU it roughly doubles convolution throughput."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def scoring_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast of scoring in ``precision`` (:data:`oodscope.precision.PRECISIONS`): bfloat16
    autocast, or none."""
    return autocast(device, precision == "bfloat16")


def model_autocast(device: torch.device, config: dict[str, Any], training: bool) -> contextlib.AbstractContextManager:
    """The autocast of a network with settings ``config``: bfloat16 while ``training`` with ``amp``
    on; otherwise that of its scoring ``precision``."""
    return autocast(device, config["amp"]) if training else scoring_autocast(device, config["precision"])


def memory_format(widths: Sequence[int] | None, threads: int | None = None) -> torch.memory_format:
    """``channels_last`` (faster convolutions on the CPU) unless a layer is narrower than 16
    channels and torch runs more than one thread (``threads``, default: torch's current count):
    with torch 2.13 on this CPU, training the small residual CNN with 8-channel layers in
    ``channels_last`` with 2 threads dies in the backward pass ("double free or corruption") on a
    batch of odd size. GEOM's f and the classifiers choose their format here. With one thread
    nothing changes; ``None`` (a Wide-ResNet) is wide enough."""
    threads = torch.get_num_threads() if threads is None else threads
    if widths is not None and min(widths) < 16 and threads > 1:
        return torch.contiguous_format
    return torch.channels_last


def in_format(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """``x`` laid out in ``fmt``. Unlike ``x.contiguous(memory_format=fmt)``, a one-channel batch is
    really given ``channels_last`` strides: torch ignores the strides of size-1 dimensions when it
    checks a layout, so ``contiguous`` returns an NCHW grey batch unchanged and a convolution whose
    weights are NCHW then runs the (on the CPU, about half as fast) NCHW kernels."""
    if fmt != torch.channels_last or x.dim() != 4:
        return x.contiguous(memory_format=fmt)
    n, c, h, w = x.shape
    if x.stride() == (h * w * c, 1, w * c, c):
        return x
    return torch.empty((n, h, w, c), dtype=x.dtype, device=x.device).copy_(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def adam_with_drop(params, lr: float, total_steps: int, drop_at: float = 0.8, weight_decay: float = 0.0):
    """Adam at ``lr`` dropping to ``lr/10`` after ``drop_at`` of training (Okamoto et al., section 4.1)."""
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    milestone = max(1, int(drop_at * total_steps))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[milestone], gamma=0.1)
    return opt, sched


def batches(n: int, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = False) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor, bar: Any) -> None:
    """One optimiser step on ``loss``, then the schedule and the progress bar."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.update(1)


def train_bce_head(
    head: torch.nn.Module,
    draw: Callable[[], tuple[Any, torch.Tensor]],
    config: dict[str, Any],
    desc: str,
) -> None:
    """Train g_theta with binary cross-entropy, target d=0 for in-distribution and d=1 for outliers,
    for ``g_steps`` Adam steps on the paper's schedule (the training of ``bce`` and ``layers``).

    ``draw()`` returns one batch: g_theta's input and the targets d (soft targets allowed).
    """
    steps = int(config["g_steps"])
    opt, sched = adam_with_drop(head.parameters(), config["g_lr"], steps, weight_decay=config["g_weight_decay"])
    head.train()
    bar = progress(steps, desc, config["progress"])
    for _ in range(steps):
        inputs, d = draw()
        step(opt, sched, F.binary_cross_entropy_with_logits(head(inputs), d), bar)
    bar.close()
    head.eval()


@torch.no_grad()
def sum_over_transforms(
    x: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    transforms: GeometricTransforms,
    batch_size: int,
    term: Callable[[torch.Tensor, int], torch.Tensor],
    post: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """sum_k term(T_k(x_normalised), k) for every image, batch by batch: the shape of the scores of
    GEOM, BCE and the intermediate-layer detector. ``term`` returns one value per image, or a row
    of values (then the sums are one row per image); ``post``, when given, maps each batch's sums
    to what is kept of them (e.g. a wide row of similarities to one distance)."""
    out = []
    for idx in batches(x.shape[0], batch_size):
        xb = normalize(x[idx]).to(device)
        s = None
        for k in range(len(transforms)):
            t = term(transforms.one(xb, k), k).float()
            s = t if s is None else s + t
        out.append((s if post is None else post(s)).cpu())
    return torch.cat(out).numpy()
