"""Shared training plumbing: seeding, devices, bf16 autocast, batching, the paper's Adam schedule."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast; on this kind of CPU it roughly doubles convolution throughput."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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


def progress(total: int, desc: str, enabled: bool = True) -> tqdm:
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr, dynamic_ncols=True)
