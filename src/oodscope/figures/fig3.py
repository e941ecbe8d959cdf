"""The paper's Fig. 3 analysis: in-distribution images GEOM rejects, and what ``layers`` says.

For an ID class c (0 and 8 by default, the rotation-invariant digits), GEOM's threshold is
the one that best separates the class's test images from the OOD ones (maximal TPR - FPR,
Youden's J, on that cell's test scores; score >= threshold means OOD). The test images of
class c that GEOM calls OOD are shown (most OOD first, at most :data:`MAX_TILES`), each
titled with ``layers``' verdict at its own best-separating threshold: "in" (green) or
"OOD" (red). The images come from ``oodscope.data.load(dataset, "test", root)`` with the
run's data root, and are checked against the labels saved with the scores.
"""

from __future__ import annotations

import math
import os
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from oodscope.bench.paper.methods import FIG3_PAIR, METHOD_NAMES
from oodscope.data import ImageSet, load
from oodscope.errors import DataError
from oodscope.figures.curves import Scored, scored_cells
from oodscope.figures.rows import data_root as run_data_root
from oodscope.results import field
from oodscope.figures.style import IN_VERDICT, OOD_VERDICT, new_figure, save_png

FIG3_CLASSES = (0, 8)
MAX_TILES = 40
BASELINE, _LAYERS_PREFERENCE = FIG3_PAIR


def youden_threshold(scores: np.ndarray, is_ood: np.ndarray) -> float:
    """The threshold maximising TPR - FPR (OOD positive; ``score >= threshold`` means OOD)."""
    fpr, tpr, thresholds = roc_curve(np.asarray(is_ood, dtype=bool), np.asarray(scores, dtype=np.float64),
                                     drop_intermediate=False)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def fig3_selection(geom: dict[str, np.ndarray], layers: dict[str, np.ndarray],
                   max_tiles: int = MAX_TILES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From the test scores of ``geom`` and ``layers`` on one class: the in-distribution test
    indices GEOM calls OOD at its best-separating threshold (most OOD first), the first
    ``max_tiles`` of them, and for those whether ``layers`` (own threshold) calls them "in"."""
    in_id = np.flatnonzero(~geom["is_ood"])
    g_thr = youden_threshold(geom["scores"], geom["is_ood"])
    l_thr = youden_threshold(layers["scores"], layers["is_ood"])
    rejected = in_id[geom["scores"][in_id] >= g_thr]
    rejected = rejected[np.argsort(-geom["scores"][rejected], kind="stable")]
    shown = rejected[:max_tiles]
    return rejected, shown, layers["scores"][shown] < l_thr


def layers_label(labels: list[str]) -> str | None:
    """The cell to compare with: the first of the paper's preferences found (``layers`` with default
    taps, else z1..z4), else any variant of that method."""
    for want in _LAYERS_PREFERENCE:
        if want in labels:
            return want
    return next((lab for lab in labels if lab.startswith(_LAYERS_PREFERENCE[0] + "[")), None)


def _test_set(dataset: str, root: str | None, cache: dict[str, ImageSet | None]) -> ImageSet | None:
    if dataset not in cache:
        try:
            cache[dataset] = load(dataset, "test", root=root, download=False)
        except (DataError, OSError) as e:
            warnings.warn(f"fig3: cannot load the {dataset} test images ({e}); skipped", stacklevel=3)
            cache[dataset] = None
    return cache[dataset]


def _tile(ax: Any, image: np.ndarray, verdict_in: bool) -> None:
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    ax.set_title("in" if verdict_in else "OOD", color=IN_VERDICT if verdict_in else OOD_VERDICT,
                 fontsize=8, fontweight="bold")
    ax.set_axis_off()


def _draw(path: Path, images: np.ndarray, verdict_in: np.ndarray, title: str) -> Path:
    n = len(images)
    ncols = max(1, min(10, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = new_figure(1.05 * ncols + 0.5, 1.2 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, img, ok in zip(axes.flat, images, verdict_in):
        _tile(ax, img, bool(ok))
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", transform=axes[0, 0].transAxes)
    fig.suptitle(textwrap.fill(title, width=max(50, 16 * ncols)), fontsize=8)
    return save_png(fig, path)


def plot_fig3(directory: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None,
              classes: tuple[int, ...] = FIG3_CLASSES, scored: Scored | None = None) -> list[Path]:
    """Write ``fig3_class<c>.png`` for each class of ``classes`` that has finished ``geom`` and
    ``layers`` cells with scores (``fig3_<dataset>_class<c>.png`` when the directory holds
    several data sets). ``data_root`` defaults to the run's. Returns the written paths."""
    scored = scored_cells(directory) if scored is None else scored
    root = str(data_root) if data_root is not None else run_data_root(directory)
    datasets = sorted({k[0] for k in scored if k[1] is not None})  # one-class figures only
    cache: dict[str, ImageSet | None] = {}
    paths = []
    for dataset in datasets:
        for c in classes:
            labels = [k[2] for k in scored if k[:2] == (dataset, c)]
            lab = layers_label(labels)
            if BASELINE not in labels or lab is None:
                continue
            test = _test_set(dataset, root, cache)
            if test is None:
                continue
            (grow, g), (lrow, lay) = scored[(dataset, c, BASELINE)], scored[(dataset, c, lab)]
            if not all(len(a["labels"]) == len(test) and np.array_equal(a["labels"], test.labels) for a in (g, lay)):
                warnings.warn(f"fig3: saved labels of {dataset} class {c} do not match its test set; skipped", stacklevel=2)
                continue
            rejected, shown, verdict_in = fig3_selection(g, lay)
            title = (f"{dataset} class {c}: {METHOD_NAMES.get(BASELINE, BASELINE)} (seed {grow['seed']}) calls {len(rejected)} of "
                     f"{int((~g['is_ood']).sum())} class-{c} test images OOD at its best-separating threshold; "
                     f"showing {len(shown)}, titled with the verdict of {lab} (seed {lrow['seed']}, "
                     f"n_oe {field(lrow, 'n_oe')}): {int(verdict_in.sum())} in, {int((~verdict_in).sum())} OOD")
            name = f"fig3_class{c}.png" if len(datasets) == 1 else f"fig3_{dataset}_class{c}.png"
            paths.append(_draw(Path(directory) / name, test.images[shown], verdict_in, title))
    return paths
