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


def digits_tensors(n_test: int) -> dict[str, Any]:
    """scikit-learn digits as tensors: training images ``x`` in [0, 1] and classes ``y``, and the
    first ``n_test`` test images ``xt`` and classes ``yt``."""
    import torch

    from oodscope.data import load
    from oodscope.inputs import as_images

    train, test = load("digits", "train"), load("digits", "test")
    return {"x": as_images(train, "train"), "y": torch.as_tensor(train.labels),
            "xt": as_images(test, "test")[:n_test], "yt": torch.as_tensor(test.labels)[:n_test]}


def write_class_folders(images: Any, labels: Any, n: int, root: Any) -> None:
    """The first ``n`` gray images (N, 1, H, W) uint8 as PNG files in ``root/<class>/``."""
    from pathlib import Path

    from PIL import Image

    for i in range(n):
        folder = Path(root) / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i, 0]).save(folder / f"{i}.png")
