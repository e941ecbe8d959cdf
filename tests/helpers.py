"""Helpers shared by tests that write results by hand."""

from __future__ import annotations

from typing import Any

from oodscope.protocols import Cell, OneClass, freeze


def one_class_cell(method: str, id_class: int, n_oe: Any = 4, oe_classes: Any = "all", seed: int = 0,
                   preset: str = "smoke", dataset: str = "digits", oe_dataset: str = "digits",
                   variant: dict[str, Any] | None = None) -> Cell:
    """A one-class cell as the benchmark plans it."""
    frozen = tuple(sorted((k, freeze(v)) for k, v in (variant or {}).items()))
    return OneClass(dataset, oe_dataset=oe_dataset).cell(method, id_class, seed, preset, n_oe, oe_classes, frozen)


def result_row(cell: Cell, **metrics: float) -> dict[str, Any]:
    """A schema-2 results row of ``cell`` with the given metrics."""
    return {"schema": 2, **cell.row_fields(), "metrics": dict(metrics)}
