"""Running a grid's cells as Ray tasks (``oodscope bench --executor ray``; extra ``oodscope[ray]``).

The driver (the process that holds the run directory) plans the pending cells as the local runner
does, then:

1. For every distinct upstream network the pending cells read (GEOM's f, a classifier), keyed as
   :class:`~oodscope.detectors.UpstreamCache` keys it (kind, settings, digest of the training
   data), one Ray task trains it once (or finds it in the worker's disk cache) and returns it as
   plain data: JSON-able facts and safetensors bytes (:meth:`UpstreamCache.payloads`).
2. Every cell becomes a Ray task asking for ``cpus_per_cell`` CPUs (and one GPU when its device is
   CUDA - the ``paper`` preset's - or ``auto`` on a cluster with GPUs); it takes the networks it reads as
   arguments, so Ray starts it once they exist, prepares its data on the worker and fits and
   scores it (:func:`oodscope.bench.cells.run_cell`).
3. The driver writes each cell's scores and results row as it arrives - workers write nothing -
   so an interrupted driver resumes like the local runner. A cell whose worker died is run again
   (``retries`` times at most, each said in the log); an error of the cell itself stops the run.

Without an address, a local Ray with this machine's CPUs is started and stopped with the run.
Workers read the data from their own data root (``--data-root``, else their ``OODSCOPE_DATA``);
the data are verified there as everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch

from oodscope.bench.cells import make_cache, run_cell, run_settings
from oodscope.bench.loop import Finished
from oodscope.bench.config import BenchConfig
from oodscope.bench.fitting import shared_upstream, upstream_inputs
from oodscope.detectors import UpstreamCache, detector_class
from oodscope.upstream.base import Upstream, upstream_key
from oodscope.errors import InputError
from oodscope.protocols import Cell, DataStore, Task

Log = Callable[[str], None]
KEEP_ALL = 1 << 10  # networks a task's cache keeps in memory: all it sees
_TASKS: dict[tuple[Any, ...], Task] = {}  # per worker process: the last group's data


def import_ray() -> Any:
    """The ``ray`` module, or an InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'oodscope[ray]'") from None
    return ray


def upstream_classes(cls: type[Upstream]) -> list[type[Upstream]]:
    """The network class a detector reads and, for a composite (an ensemble), its members' class."""
    member = getattr(cls, "member_cls", None)
    return [cls] if member is None else [cls, member]


def _task(config: BenchConfig, cell: Cell) -> Task:
    """The data of ``cell``'s group, prepared once per worker process for consecutive cells."""
    group = config.protocol.group(cell)
    if group not in _TASKS:
        _TASKS.clear()
        _TASKS[group] = config.protocol.task(cell, DataStore(config.run.data_root, config.run.download))
    return _TASKS[group]


def _threads(config: BenchConfig) -> None:
    torch.set_num_threads(config.run.cpus_per_cell)


def train_upstream(config: BenchConfig, cell: Cell) -> list[dict[str, Any]]:
    """(Ray task) The upstream network ``cell`` reads, trained or found in the worker's disk cache,
    as payloads (:meth:`UpstreamCache.payloads`)."""
    _threads(config)
    cls = detector_class(cell.method)
    cache = make_cache(config, keep=KEEP_ALL)
    det = cls(**run_settings(config, cell))
    shared_upstream(cls, det.config, _task(config, cell), cache)
    return cache.payloads()


def fit_cell(config: BenchConfig, cell: Cell, *networks: list[dict[str, Any]]) -> Finished:
    """(Ray task) Fit and score ``cell`` on its data, with the upstream ``networks`` handed over."""
    _threads(config)
    cache = UpstreamCache(None, keep=KEEP_ALL)
    up = detector_class(cell.method).requires.upstream
    for payloads in networks:
        for payload in payloads:
            cache.adopt(upstream_classes(up), payload)
    return run_cell(config, cell, _task(config, cell), cache)


def upstream_of(config: BenchConfig, cell: Cell, task: Task) -> str | None:
    """The cache key of the upstream network ``cell`` reads, or None."""
    cls = detector_class(cell.method)
    up = cls.requires.upstream
    if up is None:
        return None
    det = cls(**run_settings(config, cell))
    return upstream_key(up, up.settings_from(det.config), *upstream_inputs(up, task))


def gpus_per_cell(config: BenchConfig, cell: Cell, cluster_gpus: float) -> int:
    """One GPU for a cell whose device is CUDA (the ``paper`` preset's, or ``--device cuda``), or
    ``auto`` on a cluster that has GPUs; else none.

    Raises:
        InputError: CUDA asked for on a cluster without GPUs (the tasks would wait forever).
    """
    cls = detector_class(cell.method)
    device = str({**cls.defaults, **run_settings(config, cell)}.get("device", "cpu"))
    if device.startswith("cuda") and cluster_gpus <= 0:
        raise InputError(f"{cell.method} {cell.describe()} runs on {device}, but the Ray cluster has no GPU "
                         "(--device cpu runs it on CPUs)")
    return 1 if device.startswith("cuda") or (device == "auto" and cluster_gpus > 0) else 0


def _connect(ray: Any, config: BenchConfig) -> bool:
    """Join ``config.run.address`` or start a local Ray; True when this run started it."""
    if ray.is_initialized():
        return False
    if config.run.address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=True)
    else:
        ray.init(address=config.run.address, log_to_driver=True)
    return True


def _crashed(ray: Any, error: BaseException) -> bool:
    """Whether ``error`` says the worker or its node died (not that the cell itself failed)."""
    ex = ray.exceptions
    kinds = tuple(getattr(ex, n) for n in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                                            "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")
                  if hasattr(ex, n))
    return isinstance(error, kinds)


def ray_cells(config: BenchConfig, pending: list[Cell], store: DataStore, log: Log) -> Iterator[Finished]:
    """Run ``pending`` as Ray tasks; yield each finished cell as it arrives (any order).

    Raises:
        InputError: Ray missing, CUDA asked for on a cluster without GPUs, or a worker died more
            than ``retries`` times on one cell; the cell's own error as it was raised.
    """
    ray = import_ray()
    if config.run.cpus_per_cell < 1 or config.run.retries < 0:
        raise InputError("--cpus-per-cell must be at least 1 and --retries at least 0")
    started = _connect(ray, config)
    quiet = replace(config, run=replace(config.run, progress=False))
    running: dict[Any, tuple[int, int]] = {}  # ref -> (plan index, attempt)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        cpus = float(ray.cluster_resources().get("CPU", 0))
        log(f"ray: {cpus:g} CPUs, {gpus:g} GPUs; {config.run.cpus_per_cell} CPU(s) per cell")
        upstream_task = ray.remote(train_upstream)
        cell_task = ray.remote(fit_cell)
        networks: dict[str, Any] = {}
        plans: list[tuple[Cell, dict[str, Any], list[Any]]] = []
        group, task = None, None
        for cell in pending:
            key = None
            if detector_class(cell.method).requires.upstream is not None:  # its data are needed for the key
                if config.protocol.group(cell) != group:
                    group, task = config.protocol.group(cell), config.protocol.task(cell, store)
                key = upstream_of(config, cell, task)
            needs = {"num_cpus": config.run.cpus_per_cell, "num_gpus": gpus_per_cell(config, cell, gpus)}
            if key is not None and key not in networks:
                networks[key] = upstream_task.options(max_retries=config.run.retries, **needs).remote(quiet, cell)
            plans.append((cell, needs, [] if key is None else [networks[key]]))
        task = None

        def submit(i: int, attempt: int) -> None:
            cell, needs, args = plans[i]
            running[cell_task.options(max_retries=0, **needs).remote(quiet, cell, *args)] = (i, attempt)

        for i in range(len(plans)):
            submit(i, 1)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            i, attempt = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                raise (e.cause if isinstance(e.cause, Exception) else e) from None
            except Exception as e:
                if not _crashed(ray, e):
                    raise
                cell = plans[i][0]
                if attempt > config.run.retries:
                    raise InputError(f"{cell.label} {cell.describe()}: its Ray worker died {attempt} times; "
                                     f"stopping (rerun to resume)") from e
                log(f"{cell.label:>14} {cell.describe()}: worker died ({type(e).__name__}); "
                    f"running the cell again (attempt {attempt + 1})")
                submit(i, attempt + 1)
                continue
            yield result
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
