"""AUROC values (percent) reported by Okamoto et al. (2021), Tables 2 and 3, for comparison.

The paper gives no numbers for its Figs. 4 and 5 in the text, so none are listed here.
Its CIFAR-10 results used 80 Million Tiny Images as the outlier set (now withdrawn);
oodscope's suites use CIFAR-100 instead, so those comparisons are indicative only.
"""

from __future__ import annotations

# Table 2 rows, in the paper's order: (row label, layers taps variant or None for GEOM).
TABLE2_ROWS: list[tuple[str, tuple[str, ...] | None]] = [
    ("GEOM", None),
    ("OURS(softmax)", ("softmax",)),
    ("OURS(z4)", ("z4",)),
    ("OURS(z3)", ("z3",)),
    ("OURS(z2)", ("z2",)),
    ("OURS(z1)", ("z1",)),
    ("OURS(z1..z4)", ("z1", "z2", "z3", "z4")),
]

# oodscope's default taps of ``layers``, shown as an extra last row of Table 2.
DEFAULT_TAPS: tuple[str, ...] = ("z3", "z4", "ptrue")
DEFAULT_ROW_LABEL = "oodscope default layers (z3+z4+ptrue)"

# Table 2: mean AUROC over the 10 classes, per row label.
TABLE2: dict[str, dict[str, float]] = {
    "mnist": {
        "GEOM": 92.6, "OURS(softmax)": 92.1, "OURS(z4)": 94.5, "OURS(z3)": 98.5,
        "OURS(z2)": 97.8, "OURS(z1)": 96.4, "OURS(z1..z4)": 98.0,
    },
    "cifar10": {
        "GEOM": 89.0, "OURS(softmax)": 87.3, "OURS(z4)": 88.7, "OURS(z3)": 94.1,
        "OURS(z2)": 95.6, "OURS(z1)": 95.7, "OURS(z1..z4)": 95.6,
    },
}

# Table 3 columns: oodscope method -> the paper's column name.
TABLE3_METHODS: list[tuple[str, str]] = [("geom", "GEOM"), ("geom+", "GEOM+"), ("bce", "BCE"), ("layers", "ours")]

# Table 3: per-class AUROC, columns GEOM, GEOM+, BCE, ours; the last entry is the paper's mean.
TABLE3: dict[str, dict[int | str, tuple[float, float, float, float]]] = {
    "mnist": {
        0: (81.5, 81.8, 98.7, 99.2),
        1: (92.4, 91.7, 96.5, 99.8),
        2: (90.3, 95.7, 81.3, 94.1),
        3: (99.7, 99.3, 87.5, 99.3),
        4: (98.0, 98.8, 79.9, 99.3),
        5: (91.4, 94.6, 89.5, 98.1),
        6: (99.8, 99.4, 92.3, 99.2),
        7: (93.4, 96.4, 86.1, 96.6),
        8: (82.0, 79.6, 89.2, 97.6),
        9: (98.0, 96.1, 90.1, 96.5),
        "mean": (92.6, 93.3, 89.1, 98.0),
    },
    "cifar10": {
        0: (79.9, 68.0, 96.3, 95.4),
        1: (96.5, 96.6, 99.0, 98.9),
        2: (86.1, 87.9, 91.9, 93.2),
        3: (79.3, 81.3, 89.2, 87.6),
        4: (89.3, 89.5, 96.0, 96.4),
        5: (89.5, 88.1, 93.8, 94.2),
        6: (87.7, 88.8, 97.5, 97.6),
        7: (96.0, 96.6, 97.1, 97.3),
        8: (93.9, 94.4, 98.3, 97.9),
        9: (93.1, 94.5, 97.7, 97.3),
        "mean": (89.0, 88.6, 95.7, 95.6),
    },
}

# Short class names as the paper's Table 3 prints them (it spells truck "track").
CLASS_NAMES: dict[str, list[str]] = {
    "cifar10": ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def table3_value(dataset: str, row: int | str, method: str) -> float | None:
    """The paper's Table 3 AUROC for (data set, class or ``"mean"``, oodscope method), if any."""
    cols = [m for m, _ in TABLE3_METHODS]
    values = TABLE3.get(dataset, {}).get(row)
    return None if values is None or method not in cols else values[cols.index(method)]
