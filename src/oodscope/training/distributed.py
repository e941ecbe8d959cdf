"""Data-parallel training under ``torchrun`` (DistributedDataParallel, PyTorch's DDP).

Launched by ``torchrun --nproc-per-node N -m oodscope ...`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address), every process runs the same command; the networks
that train on large data (GEOM's f, the multi-class classifier) then train with DDP:

* each epoch is split by a :class:`~torch.utils.data.distributed.DistributedSampler` (same
  shuffle on every rank, a disjoint share each), and each step takes ``batch_size / N`` images
  per rank, so the global batch, the number of steps and the learning-rate schedule are those of
  one process;
* the network is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages
  the gradients over the ranks (gloo on CPUs, NCCL on GPUs: one process group with both backends);
* each rank draws its own random transformations and augmentations (:func:`rank_seed`);
* after training, BatchNorm's running statistics are averaged over the ranks, so every rank
  holds the same network;
* only rank 0 writes (models, cached networks, benchmark results); the others compute the same
  things and write nothing.

Without torchrun (``WORLD_SIZE`` unset or 1) nothing here changes anything.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Iterator
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

T = TypeVar("T")


def world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    """Whether this process is one of several started by torchrun."""
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes: rank 0, or the only process."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """The seed of this rank's random draws (transformations, augmentations, outlier picks), so the
    ranks do not draw the same ones for their shares; ``seed`` itself without torchrun."""
    return seed if not active() else seed + 1_000_003 * rank()


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, ``cuda`` means this process's GPU (``cuda:LOCAL_RANK``)."""
    if active() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init() -> None:
    """Join the process group of torchrun's processes (once): gloo for CPU tensors, and NCCL for
    CUDA tensors where CUDA is available."""
    if active() and not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():  # NCCL's communicators on this process's GPU, not all on GPU 0
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        atexit.register(dist.destroy_process_group)


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in DistributedDataParallel under torchrun (parameters taken from rank 0), else ``net``."""
    if not active():
        return net
    init()
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)


def average_buffers(net: torch.nn.Module) -> None:
    """After DDP training: the mean over the ranks of each floating-point buffer (BatchNorm's
    running statistics, which every rank updates from its own share of the batch), so every rank
    holds the same network. Nothing without torchrun."""
    if not active():
        return
    with torch.no_grad():
        for buf in net.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(world_size())


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps in one pass over ``n`` images (the same on every rank)."""
    if not active():
        return (n + batch_size - 1) // batch_size
    share = (n + world_size() - 1) // world_size()
    per = max(1, batch_size // world_size())
    return (share + per - 1) // per


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, epoch: int, seed: int) -> Iterator[torch.Tensor]:
    """The shuffled batches of one pass over ``n`` images: one process draws its order from
    ``generator``; under torchrun each rank takes its share of an order seeded by ``seed`` and
    ``epoch`` (a DistributedSampler), ``batch_size / N`` images a step."""
    if not active():
        order = torch.randperm(n, generator=generator)
        per = batch_size
    else:
        sampler = DistributedSampler(range(n), num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.long)
        per = max(1, batch_size // world_size())
    for i in range(0, len(order), per):
        yield order[i : i + per]


def all_agree(flag: bool) -> bool:
    """True only if ``flag`` is true on every rank (e.g. "found in my cache"), so that all ranks
    take the same branch; ``flag`` itself without torchrun."""
    if not active():
        return flag
    init()
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def from_main(obj: T) -> T:
    """Rank 0's ``obj`` (JSON-able) on every rank, e.g. which benchmark cells are already
    finished, so every rank runs the same ones; ``obj`` itself without torchrun."""
    if not active():
        return obj
    init()
    data = torch.tensor(list(json.dumps(obj).encode()) if is_main() else [], dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64)
    dist.broadcast(size, src=0)
    if not is_main():
        data = torch.empty(int(size.item()), dtype=torch.uint8)
    dist.broadcast(data, src=0)
    return json.loads(bytes(data.tolist()).decode())
