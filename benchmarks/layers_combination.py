"""Probe behind the ``layers`` default ``f_weight`` (docs/lab/BENCHMARKS.md, "Keeping layers above its
own f"): for one-class cells, GEOM's score of f, g_theta alone, and f's standardised GEOM score
added to g_theta's standardised summed logit at several weights, on a fixed test subsample.

    python benchmarks/layers_combination.py run emnist-letters mnist 0,1,4,6,8,11,16,20 --f-epochs 6
    python benchmarks/layers_combination.py run mnist emnist-letters 0-9 --f-epochs 6
    python benchmarks/layers_combination.py table
    python benchmarks/layers_combination.py run mnist synthetic-noise 2,8 --out runs/probe-gate
    python benchmarks/layers_combination.py table --gates --out runs/probe-gate
    python benchmarks/layers_combination.py run mnist synthetic-noise 8 --extra synthetic-strokes,synthetic-blobs --out runs/probe-extra

g_theta (``layers`` at the cpu preset with ``f_weight=0``) is trained on 90 % of the class's
training images; the other 10 % give the means and standard deviations; 16 known outliers; the test
subsample is every in-distribution test image plus random others up to ``--n-test``.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from oodscope.data import load
from oodscope.upstream.geom_net import GeomNet
from oodscope.inputs import as_images
from oodscope.detectors.layers import LayersDetector
from oodscope.training.core import sum_over_transforms
from oodscope.protocols.one_class import OneClassSplit, split_one_class
from oodscope.protocols.outliers import sample_outliers

WEIGHTS = (0.25, 0.5, 1.0)
GATES = (0.9, 0.99)


def subsample(split: OneClassSplit, n_test: int) -> np.ndarray:
    """Indices into ``split.test``: every in-distribution image plus random others (seed 123) up to ``n_test``."""
    rng = np.random.default_rng(123)
    ood = rng.choice(np.flatnonzero(split.is_ood), n_test - int((~split.is_ood).sum()), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(~split.is_ood), ood]))


def _logit_sum(g: LayersDetector, images: torch.Tensor) -> np.ndarray:
    """sum_y g_theta(z^y) per image (the logits, not their sigmoids)."""
    f = g.base

    def term(xt: torch.Tensor, k: int) -> torch.Tensor:
        return g.head(g._features(xt, torch.full((xt.shape[0],), k, dtype=torch.long)))

    return sum_over_transforms(images, f.normalize, f.device, f.transforms, 512, term)


def run(dataset: str, oe: str, classes: list[int], seed: int, n_test: int, epochs: int, out: Path,
        extra: tuple[str, ...] = ()) -> None:
    """``extra``: data sets of which 16 images each join the known outliers (not ``oe`` itself)."""
    torch.set_num_threads(1)
    train, test, aux = load(dataset, "train"), load(dataset, "test"), load(oe, "train")
    for c in classes:
        split = split_one_class(train, test, c, dataset)
        idx = subsample(split, n_test)
        xt, is_ood, x = as_images(split.test.images[idx]), split.is_ood[idx], as_images(split.train)
        o = as_images(sample_outliers(aux, 16, seed, like=split.train, exclude_classes=(c,) if oe == dataset else ()))
        o = torch.cat([o, *(as_images(sample_outliers(load(k, "train"), 16, seed, like=split.train)) for k in extra if k != oe)])
        f = GeomNet(seed=seed, epochs=epochs, progress=False).fit(x)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        held, rest = x[perm[: len(x) // 10]], x[perm[len(x) // 10:]]
        g = LayersDetector(seed=seed, epochs=epochs, progress=False, f_weight=0.0).fit(rest, o, upstream=f)

        np.savez(out / f"{dataset}--{oe}--{c}--{seed}.npz", is_ood=is_ood, f_test=f.geom_score(xt), f_held=f.geom_score(held),
                 g_test=_logit_sum(g, xt), g_held=_logit_sum(g, held), paper_test=g.score(xt))
        print(f"{dataset} class {c} seed {seed} done", flush=True)


def table(out: Path, gates: bool = False) -> None:
    """AUROC of each combination per cell; with ``gates``, one-sided alternatives instead: z_f plus
    the part of z_g above the q-quantile of its held-out values, and max(z_f, z_g)."""
    def z(test: np.ndarray, held: np.ndarray) -> np.ndarray:
        return (test - held.mean()) / held.std()

    cols = ["geom", "g (paper score)", "g (logit sum)", *(f"f_weight {w}" for w in WEIGHTS)]
    if gates:
        cols = ["geom", "g (logit sum)", "f_weight 0.5", "max", *(f"gate q={q}" for q in GATES)]
    print("| cell | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    by_set: dict[str, list[list[float]]] = {}
    for p in sorted(glob.glob(str(out / "*.npz"))):
        d = np.load(p)
        zf, zg = z(d["f_test"], d["f_held"]), z(d["g_test"], d["g_held"])
        scores = [d["f_test"], d["paper_test"], d["g_test"], *(w * zf + zg for w in WEIGHTS)]
        if gates:
            zh = z(d["g_held"], d["g_held"])
            scores = [d["f_test"], d["g_test"], 0.5 * zf + zg, np.maximum(zf, zg),
                      *(zf + np.maximum(zg - np.quantile(zh, q), 0) for q in GATES)]
        row = [roc_auc_score(d["is_ood"], s) * 100 for s in scores]
        name = Path(p).stem
        by_set.setdefault(name.split("--")[0], []).append(row)
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    for ds, rows in by_set.items():
        a = np.array(rows)
        print(f"| mean {ds} | " + " | ".join(f"{v:.2f}" for v in a.mean(0)) + " |")
        print(f"| worst (x - geom) {ds} | " + " | ".join(f"{v:.2f}" for v in (a - a[:, :1]).min(0)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["run", "table"])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("oe", nargs="?")
    ap.add_argument("classes", nargs="?")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=3000)
    ap.add_argument("--extra", default="", help="run: more outlier sources, 16 images each, e.g. synthetic-strokes,synthetic-blobs")
    ap.add_argument("--gates", action="store_true", help="table: the one-sided combinations instead")
    ap.add_argument("--f-epochs", type=int, default=15, help="passes of f's training (the cpu default)")
    ap.add_argument("--out", type=Path, default=Path("runs/probe-layers-combination"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.what == "table":
        return table(a.out, a.gates)
    lo, _, hi = a.classes.partition("-")
    classes = list(range(int(lo), int(hi) + 1)) if hi else [int(c) for c in a.classes.split(",")]
    run(a.dataset, a.oe, classes, a.seed, a.n_test, a.f_epochs, a.out, tuple(filter(None, a.extra.split(","))))


if __name__ == "__main__":
    main()
