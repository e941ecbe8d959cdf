"""The experiments of Okamoto, Suzuki & Matsuo (2021) as data: which methods and variants each of
its tables and figures compares, their display names, and the AUROC values (percent) the paper
reports in Tables 2 and 3, for comparison.

This is the one place outside the detectors' own files that names methods: it describes the
paper, and every experiment (:mod:`oodscope.bench.experiments`), figure and command-line default
reads it. The paper gives no numbers for its Figs. 4 and 5 in the text, so none are listed here.
Its CIFAR-10 results used 80 Million Tiny Images as the outlier set (now withdrawn); oodscope's
suites use CIFAR-100 instead, so those comparisons are indicative only.
"""

from __future__ import annotations

from typing import Any

Variant = dict[str, Any] | None

# The methods of Table 3 and Figs. 4-5, in the paper's column order, and of Table 2.
COMPARED = ["geom", "geom+", "bce", "layers"]
TABLE2_METHODS = ["geom", "layers"]

# The command line's defaults: the paper's method, and a grid of it beside its baseline GEOM.
OURS = "layers"
DEFAULT_GRID = ["geom", "layers"]
# what the stress grid compares the paper's method with: GEOM, the same network f without g_theta
OURS_BASELINE = "geom"

# The measurement suites (robustness, verification): the detector whose network is the benchmark's
# classifier (they read the classifier through its settings and cache entry), and the detectors
# attacked by the robustness suite (all of them: the preset's; a few images: the first).
CLASSIFIER_METHOD = "msp"
ROBUSTNESS_DETECTORS = ["msp", "energy", "max-logit", "ensemble"]

# The calibration suite: the classifier before / after temperature scaling, MC dropout, a deep ensemble
CALIBRATION_METHODS = ["msp", "temperature", "mc-dropout", "ensemble"]

# The calibration suite's reliability diagrams: a panel per method, in this order, with its title.
RELIABILITY_PANELS = {"msp": "before (T = 1)", "temperature": "temperature scaled", "ensemble": "deep ensemble",
                      "mc-dropout": "MC dropout"}

# How tables and figures name and colour them.
METHOD_NAMES = {"geom": "GEOM", "geom+": "GEOM+", "bce": "BCE", "layers": "layers (ours)"}
METHOD_COLOURS = {"geom": "tab:gray", "geom+": "tab:orange", "bce": "tab:purple", "layers": "tab:green"}

# Table 2 rows, in the paper's order: (row label, method, variant).
TABLE2_ROWS: list[tuple[str, str, Variant]] = [
    ("GEOM", "geom", None),
    ("OURS(softmax)", "layers", {"taps": ["softmax"]}),
    ("OURS(z4)", "layers", {"taps": ["z4"]}),
    ("OURS(z3)", "layers", {"taps": ["z3"]}),
    ("OURS(z2)", "layers", {"taps": ["z2"]}),
    ("OURS(z1)", "layers", {"taps": ["z1"]}),
    ("OURS(z1..z4)", "layers", {"taps": ["z1", "z2", "z3", "z4"]}),
]

# oodscope's default taps of ``layers``, shown as an extra last row of Table 2.
DEFAULT_ROW: tuple[str, str, Variant] = ("oodscope default layers (z3+z4+ptrue)", "layers", {"taps": ["z3", "z4", "ptrue"]})

# The paper's Fig. 3: images the first method rejects, titled with the verdict of the second
# (the first label found of those listed: default taps, then the paper's z1..z4).
FIG3_PAIR: tuple[str, tuple[str, ...]] = ("geom", ("layers", "layers[z1+z2+z3+z4]"))

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

# Table 3 columns: oodscope method -> the paper's column name, and ours as the table names it.
TABLE3_METHODS: list[tuple[str, str]] = [("geom", "GEOM"), ("geom+", "GEOM+"), ("bce", "BCE"), ("layers", "ours")]
TABLE3_OURS = ("layers", "ours (layers)")

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

# Short class names as the paper's Table 3 prints them (it spells truck "track"); letters by name.
CLASS_NAMES: dict[str, list[str]] = {
    "cifar10": ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "emnist-letters": list("abcdefghijklmnopqrstuvwxyz"),
}


def table3_value(dataset: str, row: int | str, method: str) -> float | None:
    """The paper's Table 3 AUROC for (data set, class or ``"mean"``, oodscope method), if any."""
    cols = [m for m, _ in TABLE3_METHODS]
    values = TABLE3.get(dataset, {}).get(row)
    return None if values is None or method not in cols else values[cols.index(method)]
