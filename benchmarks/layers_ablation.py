"""Cumulative effect of each change to the `layers` defaults, measured on MNIST one-class.

For every ID class given, one GEOM network f is trained with the CPU defaults and shared by all
variants; each variant trains its own g_theta on the same 16 EMNIST-letter outliers and is scored
on the whole MNIST test set (``--seed`` draws the outliers and seeds f and g). Prints a markdown
table of AUROC (%).

    python benchmarks/layers_ablation.py --classes 0,2,8
    python benchmarks/layers_ablation.py --classes 0,2,5,8 --seed 1 --variants 3,4   # ptrue vs mixup
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from oodscope.data import load
from oodscope.detectors import GeomDetector, LayersDetector
from oodscope.metrics import auroc
from oodscope.protocols import sample_outliers, split_one_class

PAPER_G = {"taps": ["z1", "z2", "z3", "z4"], "g_augment": "none", "g_mixup": 0.0}
VARIANTS: list[tuple[str, dict]] = [
    ("paper's g: taps z1-z4", PAPER_G),
    ("+ outlier augmentation", {**PAPER_G, "g_augment": "outliers"}),
    ("taps z3, z4 (+ augmentation)", {**PAPER_G, "taps": ["z3", "z4"], "g_augment": "outliers"}),
    ("+ ptrue (= defaults)", {**PAPER_G, "taps": ["z3", "z4", "ptrue"], "g_augment": "outliers"}),
    ("+ mixup 0.3", {**PAPER_G, "taps": ["z3", "z4", "ptrue"], "g_augment": "outliers", "g_mixup": 0.3}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", default="0,2,8")
    ap.add_argument("--n-oe", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=None, help="indices into VARIANTS, e.g. 3,4 (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = VARIANTS if args.variants is None else [VARIANTS[int(i)] for i in args.variants.split(",")]
    classes = [int(c) for c in args.classes.split(",")]
    train_all, test_all = load("mnist", "train"), load("mnist", "test")
    aux = load("emnist-letters", "train")
    table: dict[str, list[float]] = {"geom": []} | {name: [] for name, _ in variants}
    start = time.perf_counter()
    for c in classes:
        split = split_one_class(train_all, test_all, c, "mnist")
        oe = sample_outliers(aux, args.n_oe, seed=args.seed, like=split.train)
        geom = GeomDetector(seed=args.seed, progress=False).fit(split.train)
        table["geom"].append(100 * auroc(geom.score(split.test), split.is_ood))
        for name, over in variants:
            det = LayersDetector(seed=args.seed, progress=False, **over).fit(split.train, oe, upstream=geom)
            table[name].append(100 * auroc(det.score(split.test), split.is_ood))
            print(f"class {c} {name}: {table[name][-1]:.1f}", flush=True)
    print(f"\nseed {args.seed}, {args.n_oe} outliers\n\n| variant | " + " | ".join(f"class {c}" for c in classes) + " | mean |")
    print("|---|" + "---:|" * (len(classes) + 1))
    for name, vals in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {np.mean(vals):.1f} |")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
