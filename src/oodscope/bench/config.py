"""What a benchmark run is asked to do: :class:`BenchConfig`, with its run options grouped in
:class:`RunOptions` and the protocol's own parameters in its protocol object."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodscope.errors import InputError
from oodscope.bench.paper.methods import DEFAULT_GRID
from oodscope.protocols import OneClass, Protocol

if TYPE_CHECKING:  # the user model's adapter loads torch: the torch-free readers (report, merge) import this module
    from oodscope.bench.user_model import BenchModel

EXECUTORS = ("local", "ray")


@dataclass
class RunOptions:
    """How a run executes, not what it computes (none of these changes a result's key).

    Attributes:
        device: Overrides the preset's device when set (cpu, cuda, cuda:N, auto).
        data_root: Data root (see :func:`oodscope.data.resolve_root`).
        download: Whether missing data files may be downloaded.
        progress: Show progress (bars on a terminal, a few lines in a log).
        cache_dir: Directory of the upstream-network cache; None = the default
            (``$OODSCOPE_CACHE`` or ``~/.cache/oodscope/networks``).
        disk_cache: Keep trained upstream networks on disk (False: in memory only).
        executor: ``local`` (cells run in this process) or ``ray`` (cells run as Ray tasks; only
            this process writes the results, see :mod:`oodscope.bench.ray_executor`).
        address: The Ray cluster to join (``auto`` or ``HOST:PORT``); None starts a local Ray with
            this machine's CPUs. Only with ``executor="ray"``.
        cpus_per_cell: CPUs a Ray task asks for, and torch's thread count in it (default 1).
        retries: How often a cell whose Ray worker died is run again before the run stops.
    """

    device: str | None = None
    data_root: str | os.PathLike[str] | None = None
    download: bool = True
    progress: bool = True
    cache_dir: str | os.PathLike[str] | None = None
    disk_cache: bool = True
    executor: str = "local"
    address: str | None = None
    cpus_per_cell: int = 1
    retries: int = 2

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise InputError(f"unknown executor {self.executor!r}; known: {', '.join(EXECUTORS)}")
        if self.address is not None and self.executor != "ray":
            raise InputError("a Ray address (--address) needs --executor ray")

    @classmethod
    def from_options(cls, opts: dict[str, Any]) -> RunOptions:
        """The run options among ``oodscope bench``'s options."""
        return cls(**{k: opts[k] for k in ("device", "data_root", "download", "progress", "cache_dir", "disk_cache",
                                           "executor", "address", "cpus_per_cell", "retries")})

    def to_json(self) -> dict[str, Any]:
        """The options as JSON-able values (paths as strings)."""
        d = asdict(self)
        for k in ("data_root", "cache_dir"):
            d[k] = None if d[k] is None else str(d[k])
        return d


@dataclass
class BenchConfig:
    """The grid of a benchmark and where it goes.

    Attributes:
        out: Directory for ``results.jsonl``, ``summary.md``, ``experiment.json`` and ``scores/``.
        protocol: The evaluation protocol and its parameters (:class:`~oodscope.protocols.OneClass`,
            :class:`~oodscope.protocols.MultiClass`).
        methods: Detector methods, in table order.
        seeds: Seeds; each seeds the detector and the protocol's random choices (outlier sample).
        preset: Settings preset (``cpu``, ``paper``, ``smoke``, ``demo``).
        variants: Setting variants; each gives its own cells for the methods having those settings.
        overrides: Extra detector settings applied after the preset (only to methods knowing them).
        run: How the run executes (:class:`RunOptions`).
        command: The command line, recorded in ``experiment.json`` (its ``grid`` section).
        keep: Outputs of the detectors (such as ``logits``) saved beside each cell's test scores, for
            figures that draw from them (a calibration suite's reliability diagrams).
        model: A model of yours that every detector taking one reads instead of training its own
            (:class:`~oodscope.bench.user_model.BenchModel`); None: oodscope's own networks.
    """

    out: str | os.PathLike[str]
    protocol: Protocol = field(default_factory=OneClass)
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_GRID))
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = "cpu"
    variants: list[dict[str, Any]] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    run: RunOptions = field(default_factory=RunOptions)
    command: list[str] | None = None
    keep: tuple[str, ...] = ()
    model: BenchModel | None = None

    @property
    def directory(self) -> Path:
        """``out`` as a Path."""
        return Path(self.out)

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-able values."""
        return {"out": str(self.out), "protocol": self.protocol.to_json(), "methods": list(self.methods),
                "seeds": list(self.seeds), "preset": self.preset, "variants": self.variants,
                "overrides": self.overrides, "run": self.run.to_json(),
                **({"model": self.model.to_json()} if self.model is not None else {})}
