"""The ``stress`` grid: does ``layers`` hold whatever the few known outliers are?

For each in-distribution data set of the one-class protocol and each outlier source — the other
data set (MNIST ↔ EMNIST letters), scikit-learn's digits in MNIST's frame and the generated noise,
blobs and strokes (:mod:`oodscope.data.synthetic`) — it runs ``geom`` and ``layers`` (and any other
method given) on every class and seed with 16 known outliers, one resumable grid per (data set,
source) in ``OUT/<dataset>--<source>/``. GEOM's network f does not depend on the outliers, so the
upstream cache trains it once per (data set, class, seed) for all sources, and the grids advance
together so that f's pass over the test images runs once for them all (:func:`run_stress`); a
method that uses no outliers (``geom``) runs in the first source's grid only and its rows stand
for every source.

``OUT/table.md`` has one row per (data set, source): the mean AUROC of each method over classes
(each class the mean over seeds), the mean of ``layers − geom`` and its worst class, and the number
of classes where ``layers`` falls more than :data:`TOLERANCE` below ``geom`` (the issue's bound).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from oodscope.atomic import write_text_atomic
from oodscope.bench.config import BenchConfig, RunOptions
from oodscope.bench.paper.methods import OURS, OURS_BASELINE
from oodscope.errors import InputError
from oodscope.progress import message
from oodscope.results import ResultsLog, first_per_cell
from oodscope.results.tables import Table

SYNTHETIC_SOURCES = ["digits-28", "synthetic-noise", "synthetic-blobs", "synthetic-strokes"]
# per in-distribution data set: its outlier sources, the natural one first
SOURCES: dict[str, list[str]] = {"mnist": ["emnist-letters", *SYNTHETIC_SOURCES],
                                 "emnist-letters": ["mnist", *SYNTHETIC_SOURCES]}
TOLERANCE = 1.0  # AUROC points layers may fall below geom (the run-to-run spread)


@dataclass
class StressPlan:
    """The stress grid (defaults: the issue's).

    Attributes:
        datasets: In-distribution data sets (keys of :data:`SOURCES`).
        sources: Outlier sources per data set (default :data:`SOURCES`).
        classes: In-distribution classes (None: every class of each data set).
        seeds: Seeds.
        methods: Methods; ``geom`` and ``layers`` are needed for the table's differences.
        n_oe: Known outliers per cell.
        preset: Settings preset.
        memo_bytes: Memory for f's taps shared by the cells of one class and seed, emptied before
            the next (one f's pass over the EMNIST letters test set, the held-out images and the
            kNN bank under 8 transformations is about 3.6 GiB at the cpu preset).
    """

    datasets: list[str] = field(default_factory=lambda: ["mnist", "emnist-letters"])
    sources: dict[str, list[str]] | None = None
    classes: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[str] = field(default_factory=lambda: [OURS_BASELINE, OURS])
    n_oe: int = 16
    preset: str = "cpu"
    memo_bytes: int = 6 * 2**30

    def pairs(self) -> list[tuple[str, str]]:
        """(data set, outlier source) of every grid, in order."""
        sources = {**SOURCES, **(self.sources or {})}
        unknown = [d for d in self.datasets if d not in sources]
        if unknown:
            raise InputError(f"stress: no outlier sources for {unknown}; known data sets: {', '.join(sources)}")
        if not {OURS_BASELINE, OURS} <= set(self.methods):
            raise InputError(f"stress: the methods must include {OURS_BASELINE} and {OURS} (the table compares them)")
        return [(d, s) for d in self.datasets for s in sources[d]]


def grid_directory(out: str | Path, dataset: str, source: str) -> Path:
    return Path(out) / f"{dataset}--{source}"


def run_stress(plan: StressPlan, out: str | Path, run: RunOptions, command: list[str] | None = None,
               overrides: dict[str, Any] | None = None) -> Path:
    """Run (or resume) every grid of ``plan`` under ``out`` and write ``out/table.md``;
    ``overrides``: detector settings applied after the preset (``--set``).

    The grids advance together, one (data set, class, seed) at a time through every source, inside
    a :func:`~oodscope.upstream.tap_memo.open_memo` of ``plan.memo_bytes``: the cells of one class
    and seed read the same f on the same test images, so f's pass over them runs once, not once
    per source (the results are the same either way)."""
    from oodscope.bench.runner import run_bench
    from oodscope.detectors.registry import detector_class
    from oodscope.protocols import DataStore, OneClass
    from oodscope.upstream.tap_memo import open_memo

    pairs = plan.pairs()
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {pair: [] for pair in pairs}
    no_outliers = {m for m in plan.methods if not detector_class(m).requires.outliers}
    store = DataStore(run.data_root, run.download)
    with open_memo(plan.memo_bytes) as memo:
        for dataset in plan.datasets:
            sources = [s for d, s in pairs if d == dataset]
            classes = plan.classes if plan.classes is not None else range(store.n_classes(dataset))
            for c in classes:
                for seed in plan.seeds:
                    memo.clear()  # the next f is another network: what was kept is of no more use
                    shared: list[dict[str, Any]] = []  # rows of the methods that use no outliers
                    for i, source in enumerate(sources):
                        # the first source runs the methods that use no outliers last: geom's pass reads the
                        # logits among the taps layers kept
                        methods = [m for m in plan.methods if m not in no_outliers]
                        methods += [m for m in plan.methods if m in no_outliers] if i == 0 else []
                        protocol = OneClass(dataset=dataset, classes=(c,), oe_dataset=source, n_oe=(plan.n_oe,))
                        config = BenchConfig(out=grid_directory(out, dataset, source), protocol=protocol,
                                             methods=methods, seeds=[seed], preset=plan.preset,
                                             overrides=dict(overrides or {}), run=run, command=command)
                        done = run_bench(config, store=store)  # the data sets loaded once for every grid
                        if i == 0:
                            shared = [r for r in done if r["method"] in no_outliers]
                        rows[(dataset, source)] += done if i == 0 else [*shared, *done]
    message(f"stress: f's taps on a batch reused {memo.hits} times, computed {memo.misses} times")
    return write_text_atomic(Path(out) / "table.md", render(rows, plan.methods))


def class_means(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Per method, per in-distribution class: the mean AUROC over seeds."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        values[r["method"]][int(r["protocol_fields"]["id_class"])].append(float(r["metrics"]["auroc"]))
    return {m: {c: fmean(v) for c, v in by.items()} for m, by in values.items()}


def stress_table(rows: dict[tuple[str, str], list[dict[str, Any]]], methods: list[str]) -> Table:
    """One row per (data set, outlier source)."""
    table = Table(["data set", "outliers", "classes", *methods, f"{OURS} − {OURS_BASELINE}", "worst class",
                   f"classes < −{TOLERANCE:g}"],
                  align=["left", "left", *["right"] * (len(methods) + 4)],
                  caption=f"Mean AUROC (%) over classes (each the mean over seeds); {OURS} − {OURS_BASELINE} per class, its "
                          f"mean, its worst class and the classes where {OURS} falls more than {TOLERANCE:g} below "
                          f"{OURS_BASELINE}")
    for (dataset, source), group in rows.items():
        means = class_means(group)
        classes = sorted(set(means.get(OURS_BASELINE, {})) & set(means.get(OURS, {})))
        diffs = {c: means[OURS][c] - means[OURS_BASELINE][c] for c in classes}
        worst = min(diffs, key=diffs.get) if diffs else None
        table.rows.append([dataset, source, str(len(classes)),
                           *[f"{fmean(means[m].values()):.2f}" if means.get(m) else "–" for m in methods],
                           f"{fmean(diffs.values()):+.2f}" if diffs else "–",
                           f"{worst}: {diffs[worst]:+.2f}" if worst is not None else "–",
                           str(sum(d < -TOLERANCE for d in diffs.values()))])
    return table


def render(rows: dict[tuple[str, str], list[dict[str, Any]]], methods: list[str]) -> str:
    table = stress_table(rows, methods)
    return "\n".join([f"# Stress grid: {OURS} against its own f ({OURS_BASELINE}) for each outlier source", "",
                      table.caption + ":", "", table.markdown(), ""])


def grid_rows(out: str | Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The finished rows of every grid under ``out`` (``DATASET--SOURCE/``), as :func:`run_stress`
    gathers them: the rows of the methods that use no outliers, run in the first source's grid only,
    stand for every source of their data set."""
    grids: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in sorted(p for p in Path(out).iterdir() if p.is_dir() and "--" in p.name and (p / "results.jsonl").is_file()):
        dataset, source = d.name.split("--", 1)
        grids[(dataset, source)] = list(first_per_cell(ResultsLog(d / "results.jsonl").rows()).values())
    order = {pair: (pair[0], SOURCES.get(pair[0], []).index(pair[1]) if pair[1] in SOURCES.get(pair[0], []) else 99, pair[1])
             for pair in grids}
    grids = {pair: grids[pair] for pair in sorted(grids, key=order.__getitem__)}
    for dataset in dict.fromkeys(d for d, _ in grids):
        first, *others = [p for p in grids if p[0] == dataset]
        elsewhere = {r["method"] for p in others for r in grids[p]}
        shared = [r for r in grids[first] if r["method"] not in elsewhere]  # run in the first source's grid only
        for p in others:
            grids[p] = [*shared, *grids[p]]
    return grids
