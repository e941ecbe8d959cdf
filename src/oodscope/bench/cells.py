"""Benchmark cells: one (data set, method, class, outlier budget, seed, preset) experiment each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OE_ALL = "all"


@dataclass(frozen=True)
class Cell:
    """One experiment of a benchmark; its :meth:`key` identifies it in ``results.jsonl``.

    Attributes:
        dataset: In-distribution data set name.
        method: Detector method (a key of ``oodscope.detectors.DETECTORS``).
        id_class: The in-distribution class.
        n_oe: Number of known outliers, or ``"all"``.
        oe_classes: Number of outlier classes they are drawn from, or ``"all"``.
        oe_dataset: The auxiliary data set the outliers come from.
        seed: Seed of the detector and of the outlier sample.
        preset: Name of the settings preset.
        taps: Variant of the ``taps`` setting (e.g. ``("z4",)``), or None for the preset's.
    """

    dataset: str
    method: str
    id_class: int
    n_oe: int | str
    oe_classes: int | str
    oe_dataset: str
    seed: int
    preset: str
    taps: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """The method as shown in tables: ``layers`` or ``layers[z4]`` for a taps variant."""
        return self.method if self.taps is None else f"{self.method}[{'+'.join(self.taps)}]"

    @property
    def group(self) -> tuple[Any, ...]:
        """Cells sharing this value share their data and GEOM's trained f."""
        return (self.dataset, self.id_class, self.seed, self.preset, self.oe_dataset, self.n_oe, self.oe_classes)

    def key(self) -> tuple[Any, ...]:
        """The identity of the cell, comparable with :func:`row_key` of a results row."""
        return (
            self.dataset, self.method, self.id_class, self.n_oe, self.oe_classes,
            self.oe_dataset, self.seed, self.preset, self.taps,
        )

    def fields(self) -> dict[str, Any]:
        """The cell's identifying fields as written into a results row."""
        return {
            "dataset": self.dataset,
            "method": self.method,
            "taps_variant": None if self.taps is None else list(self.taps),
            "id_class": self.id_class,
            "n_oe": self.n_oe,
            "oe_classes": self.oe_classes,
            "oe_dataset": self.oe_dataset,
            "seed": self.seed,
            "preset": self.preset,
        }


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """The cell key of a row read back from ``results.jsonl``."""
    taps = row.get("taps_variant")
    return (
        row["dataset"], row["method"], row["id_class"], row["n_oe"], row["oe_classes"],
        row["oe_dataset"], row["seed"], row["preset"], None if taps is None else tuple(taps),
    )


def expand_cells(
    dataset: str,
    methods: list[str],
    classes: list[int],
    oe_dataset: str,
    n_oe: list[int | str],
    oe_classes: list[int | str],
    seeds: list[int],
    preset: str,
    taps_variants: list[tuple[str, ...]] | None = None,
    taps_methods: frozenset[str] = frozenset(),
) -> list[Cell]:
    """Every cell of the grid, ordered so cells of one group (:attr:`Cell.group`) are adjacent
    and groups sharing (class, seed) follow each other.

    ``taps_variants`` replaces the default variant of each method in ``taps_methods``
    (methods with a ``taps`` setting) by one cell per variant.
    """
    cells = []
    for c in classes:
        for s in seeds:
            for n in n_oe:
                for k in oe_classes:
                    for m in methods:
                        variants: list[tuple[str, ...] | None] = [None]
                        if taps_variants and m in taps_methods:
                            variants = list(taps_variants)
                        for t in variants:
                            cells.append(Cell(dataset, m, c, n, k, oe_dataset, s, preset, t))
    return cells
