"""What limits ``geom`` at the cpu preset off MNIST: GEOM's AUROC of f trained with more epochs,
more transformations or wider layers, per one-class cell, on a fixed test subsample.

    python benchmarks/geom_capacity.py emnist-letters 6,8,11 --seed 0
    python benchmarks/geom_capacity.py mnist 0,8 --variants 0,1

Each variant is the cpu preset with the settings shown changed (f at 6 passes unless named); the test subsample is every
in-distribution test image plus random others up to ``--n-test``; seconds are one torch thread
(scoring seconds for the subsample).
"""

from __future__ import annotations

import argparse
import time

import torch
from sklearn.metrics import roc_auc_score

from oodscope.data import load
from oodscope.upstream.geom_net import GeomNet
from oodscope.inputs import as_images
from oodscope.protocols.one_class import split_one_class

from layers_combination import subsample  # the test subsample of the other probe (same directory)

# each variant changes one setting of the cpu preset as it was before this study (6 epochs)
VARIANTS: dict[str, dict] = {
    "cpu (flip-rot4, 6 epochs, 16/32/64)": {"epochs": 6},
    "15 epochs": {"epochs": 15},
    "widths 32/64/128": {"epochs": 6, "widths": [32, 64, 128]},
    "72 transformations (geom72)": {"epochs": 6, "transforms": "geom72"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("classes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=3000)
    ap.add_argument("--variants", default="0-3", help="which variants, e.g. 0,1 (default: all)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    train, test = load(a.dataset, "train"), load(a.dataset, "test")
    print("| class | variant | AUROC | fit s | score s |\n|---|---|---:|---:|---:|", flush=True)
    for c in (int(v) for v in a.classes.split(",")):
        split = split_one_class(train, test, c, a.dataset)
        idx = subsample(split, a.n_test)
        xt, x = as_images(split.test.images[idx]), as_images(split.train)
        lo, _, hi = a.variants.partition("-")
        chosen = range(int(lo), int(hi) + 1) if hi else [int(v) for v in a.variants.split(",")]
        for name, settings in (list(VARIANTS.items())[i] for i in chosen):
            t0 = time.perf_counter()
            f = GeomNet(seed=a.seed, progress=False, **settings).fit(x)
            t1 = time.perf_counter()
            s = f.geom_score(xt)
            t2 = time.perf_counter()
            print(f"| {split.train.classes[c] if split.train.classes else c} | {name} | "
                  f"{100 * roc_auc_score(split.is_ood[idx], s):.2f} | {t1 - t0:.0f} | {t2 - t1:.0f} |", flush=True)


if __name__ == "__main__":
    main()
