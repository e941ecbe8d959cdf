"""What a benchmark run is asked to do: :class:`BenchConfig`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oodscope.bench.cells import OE_ALL


@dataclass
class BenchConfig:
    """The grid of a benchmark and where it goes.

    Attributes:
        out: Directory for ``results.jsonl``, ``summary.md`` and ``run.json``.
        dataset: In-distribution data set (one-class protocol on each class).
        methods: Detector methods, in table order.
        classes: In-distribution classes; None = every class of ``dataset``.
        oe_dataset: Auxiliary data set (its train split) the known outliers come from. If it is
            ``dataset`` itself, the in-distribution class is excluded from the sample.
        n_oe: Outlier budgets (ints, or ``"all"`` for the whole auxiliary set).
        oe_classes: Numbers of auxiliary classes the outliers are drawn from (or ``"all"``).
        seeds: Seeds; each seeds the detector and the outlier sample.
        preset: Name in :data:`oodscope.bench.presets.PRESETS`.
        device: Overrides the preset's device when set.
        data_root: Data root (see :func:`oodscope.data.resolve_root`).
        download: Whether missing data files may be downloaded.
        taps: Variants of the ``taps`` setting; each gives its own cells for methods with taps.
        overrides: Extra detector settings applied after the preset (only to methods knowing them).
        progress: Show progress bars (cells, and the detectors' training).
        command: The command line, recorded in ``run.json``.
    """

    out: str | os.PathLike[str]
    dataset: str = "mnist"
    methods: list[str] = field(default_factory=lambda: ["geom", "layers"])
    classes: list[int] | None = None
    oe_dataset: str = "emnist-letters"
    n_oe: list[int | str] = field(default_factory=lambda: [16])
    oe_classes: list[int | str] = field(default_factory=lambda: [OE_ALL])
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = "cpu"
    device: str | None = None
    data_root: str | os.PathLike[str] | None = None
    download: bool = True
    taps: list[tuple[str, ...]] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    command: list[str] | None = None

    @property
    def directory(self) -> Path:
        """``out`` as a Path."""
        return Path(self.out)

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-able values (paths as strings)."""
        d = asdict(self)
        d["out"] = str(self.out)
        d["data_root"] = None if self.data_root is None else str(self.data_root)
        d["taps"] = None if self.taps is None else [list(t) for t in self.taps]
        return d
