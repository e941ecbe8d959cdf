"""Probe: does a nearest-neighbour distance in f's own feature space make ``layers`` safe where
g_theta is not (docs/BENCHMARKS.md, issue 15)?

For one-class cells of the bench protocol (whole test split), fits ``layers`` with the run's
settings and the cached f, and saves per test image and per held-out in-distribution image:
GEOM's score s_f, g_theta's summed logit s_g, and the distance to the k-th nearest training image
(the 90 % g_theta trains on) in several feature spaces of f - z4 (the pooled last block) of the
untransformed image, and z4 of every transformation concatenated, each L2-normalised (Sun et al.,
"Out-of-distribution detection with deep nearest neighbors", ICML 2022) - and in pixels.

    python benchmarks/layers_knn.py run emnist-letters mnist 13,2 --seed 0 --cache runs/cache-letters
    python benchmarks/layers_knn.py table
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from oodscope.bench.cells import make_cache
from oodscope.bench.config import BenchConfig, RunOptions
from oodscope.bench.fitting import fit_detector
from oodscope.bench.presets import cell_settings
from oodscope.bench.runner import plan
from oodscope.detectors.inputs import as_images
from oodscope.protocols import DataStore, OneClass

KS = (1, 5, 20)


def f_features(det, x: torch.Tensor) -> dict[str, np.ndarray]:
    """L2-normalised z4 of the untransformed images and of all transformations concatenated."""
    f = det.base
    ident, allk, z3p = [], [], []
    norm = torch.nn.functional.normalize
    for i in range(0, x.shape[0], 512):
        xb = f.normalize(x[i:i + 512]).to(f.device)
        taps = [f.taps(f.transforms.one(xb, k)) for k in range(len(f.transforms))]
        zs = [norm(t["z4"].float(), dim=1) for t in taps]
        ident.append(zs[0])
        allk.append(norm(torch.cat(zs, 1), dim=1))
        z3p.append(norm(torch.cat([norm(torch.nn.functional.adaptive_avg_pool2d(t["z3"].float(), 2).flatten(1), dim=1) for t in taps], 1), dim=1))
    return {"z4id": torch.cat(ident).numpy(), "z4all": torch.cat(allk).numpy(), "z3p2": torch.cat(z3p).numpy()}


def kth(bank: np.ndarray, q: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """Distance of each row of ``q`` to its k-th nearest row of ``bank``, one column per k."""
    b = torch.from_numpy(bank).float()
    out = []
    for i in range(0, q.shape[0], 2048):
        d = torch.cdist(torch.from_numpy(q[i:i + 2048]).float(), b)
        out.append(d.topk(max(ks), dim=1, largest=False).values[:, [k - 1 for k in ks]])
    return torch.cat(out).numpy()


def run(dataset: str, oe: str, classes: list[int], seed: int, cache: Path, out: Path) -> None:
    torch.set_num_threads(1)
    config = BenchConfig(out=out / "bench", protocol=OneClass(dataset=dataset, classes=tuple(classes), oe_dataset=oe, n_oe=(16,)),
                         methods=["layers"], seeds=[seed], run=RunOptions(cache_dir=cache, progress=False))
    store = DataStore()
    for cell in plan(config, store):
        task = config.protocol.task(cell, store)
        det, _, _ = fit_detector("layers", cell_settings(cell, None, {}, False), task, make_cache(config))
        x, xt = as_images(task.train), as_images(task.test)
        n = x.shape[0]
        n_held = max(2, int(round(det.config["holdout"] * n)))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(det.config["seed"]) + 3))
        held, rest = x[perm[:n_held]], x[perm[n_held:]]
        save = {"is_ood": task.is_ood}
        for name, imgs in (("test", xt), ("held", held)):
            sums = det._sums(imgs)
            save[f"f_{name}"], save[f"g_{name}"] = sums[:, 0], sums[:, 1]
        bank = f_features(det, rest)
        for name, imgs in (("test", xt), ("held", held)):
            feats = f_features(det, imgs)
            for space in bank:
                save[f"{space}_{name}"] = kth(bank[space], feats[space], KS)
            save[f"pix_{name}"] = kth(rest.flatten(1).numpy(), imgs.flatten(1).numpy(), KS)
        c = cell["id_class"]
        np.savez(out / f"{dataset}--{oe}--{c}--{seed}.npz", **save)
        print(f"{dataset} {oe} class {c} seed {seed} done", flush=True)


COMBOS = ((0.5, 1.0, 0.0), (0.5, 1.0, 0.5), (0.5, 1.0, 1.0), (0.5, 1.0, 2.0), (0.0, 1.0, 1.0), (0.0, 1.0, 2.0), (0.5, 0.5, 1.0))


def table(out: Path, space: str = "z4all", k_col: int = 1) -> None:
    """AUROC per cell: GEOM, the default (0.5 z_f + z_g), the kNN distances alone, and
    w_f z_f + w_g z_g + w_k z_knn (``space``, k = KS[k_col]) for the weights of COMBOS."""
    def z(test: np.ndarray, held: np.ndarray) -> np.ndarray:
        return (test - held.mean()) / held.std()

    cols = ["geom", "default", "pix k=5", *(f"{s} k={k}" for s in ("z4id", "z4all") for k in KS),
            *(f"{wf}f+{wg}g+{wk}k" for wf, wg, wk in COMBOS)]
    print("| cell | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    rows = []
    for p in sorted(glob.glob(str(out / "*.npz"))):
        d = np.load(p)
        zf, zg = z(d["f_test"], d["f_held"]), z(d["g_test"], d["g_held"])
        zk = z(d[f"{space}_test"][:, k_col], d[f"{space}_held"][:, k_col])
        scores = [d["f_test"], 0.5 * zf + zg, d["pix_test"][:, 1],
                  *(d[f"{s}_test"][:, i] for s in ("z4id", "z4all") for i in range(len(KS))),
                  *(wf * zf + wg * zg + wk * zk for wf, wg, wk in COMBOS)]
        row = [roc_auc_score(d["is_ood"], s) * 100 for s in scores]
        rows.append(row)
        print(f"| {Path(p).stem} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    a = np.array(rows)
    print("| mean | " + " | ".join(f"{v:.2f}" for v in a.mean(0)) + " |")
    print("| worst (x - geom) | " + " | ".join(f"{v:.2f}" for v in (a - a[:, :1]).min(0)) + " |")
    print("| worst (x - pix) | " + " | ".join(f"{v:.2f}" for v in (a - a[:, 2:3]).min(0)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["run", "table"])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("oe", nargs="?")
    ap.add_argument("classes", nargs="?")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("runs/cache-letters"))
    ap.add_argument("--out", type=Path, default=Path("runs/probe-layers-knn"))
    ap.add_argument("--space", default="z4all", choices=["z4id", "z4all", "z3p2", "pix"], help="table: the kNN space combined")
    ap.add_argument("--k", type=int, default=5, choices=KS, help="table: the k combined")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.what == "table":
        return table(a.out, a.space, KS.index(a.k))
    run(a.dataset, a.oe, [int(c) for c in a.classes.split(",")], a.seed, a.cache, a.out)


if __name__ == "__main__":
    main()
