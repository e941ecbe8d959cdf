"""Probe: does a nearest-neighbour distance in f's own feature space make ``layers`` safe where
g_theta is not (docs/lab/BENCHMARKS.md, issue 15)?

For one-class cells of the bench protocol (whole test split), fits ``layers`` with the run's
settings and the cached f, and saves per test image and per held-out in-distribution image:
GEOM's score s_f, g_theta's summed logit s_g, and the distance to the k-th nearest training image
(the 90 % g_theta trains on) in several feature spaces of f - z4 (the pooled last block) of the
untransformed image, and z4, z3, z2 or z1 (maps averaged over a grid of cells) of every
transformation concatenated, each L2-normalised (Sun et al., "Out-of-distribution detection with
deep nearest neighbors", ICML 2022; see :func:`f_features`) - and in pixels.

    python benchmarks/layers_knn.py run emnist-letters mnist 13,2 --seed 0 --cache runs/cache-letters
    python benchmarks/layers_knn.py table      # z4 combinations and weights
    python benchmarks/layers_knn.py spaces     # every space, alone and combined
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
from oodscope.inputs import as_images
from oodscope.protocols import DataStore, OneClass

KS = (1, 5, 20)


def f_features(det, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per space, f's features of every image: z4 of the untransformed image ("z4id"); under every
    transformation, each unit-normalised, concatenated and normalised again: z4 ("z4all"), z3 pooled
    to 2x2 ("z3p2") or to 1x1 ("z3p1"), z2 pooled to 2x2, 3x3 or 4x4 ("z2p2", "z2p3", "z2p4"), z1 pooled
    to 2x2 ("z1p2"), and z3p2 beside z4 ("z34")."""
    f = det.base
    norm = torch.nn.functional.normalize
    pool = torch.nn.functional.adaptive_avg_pool2d
    per_space: dict[str, list[torch.Tensor]] = {}
    for i in range(0, x.shape[0], 512):
        xb = f.normalize(x[i:i + 512]).to(f.device)
        taps = [f.taps(f.transforms.one(xb, k)) for k in range(len(f.transforms))]
        views = {"z4all": [t["z4"].float() for t in taps],
                 "z3p2": [pool(t["z3"].float(), 2).flatten(1) for t in taps],
                 "z3p1": [pool(t["z3"].float(), 1).flatten(1) for t in taps],
                 "z2p2": [pool(t["z2"].float(), 2).flatten(1) for t in taps],
                 "z2p3": [pool(t["z2"].float(), 3).flatten(1) for t in taps],
                 "z2p4": [pool(t["z2"].float(), 4).flatten(1) for t in taps],
                 "z1p2": [pool(t["z1"].float(), 2).flatten(1) for t in taps]}
        views["z34"] = [torch.cat([norm(a, dim=1), norm(b, dim=1)], 1) for a, b in zip(views["z3p2"], views["z4all"])]
        feats = {name: norm(torch.cat([norm(v, dim=1) for v in vs], 1), dim=1) for name, vs in views.items()}
        feats["z4id"] = norm(views["z4all"][0], dim=1)
        for name, v in feats.items():
            per_space.setdefault(name, []).append(v)
    return {name: torch.cat(vs).numpy() for name, vs in per_space.items()}


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


SPACES = ("z4all", "z3p2", "z2p2", "z2p3", "z2p4", "z1p2", "pix")
CANDIDATES = (("z4all",), ("z3p2",), ("z2p2",), ("z2p3",), ("z2p4",), ("z1p2",), ("pix",), ("z4all", "z2p2"))


def spaces_table(out: Path) -> None:
    """AUROC per cell of each kNN space alone (k = 5) and of 0.5 z_f + z_g + z_knn, where z_knn is one
    space's standardised distance or the mean of two (CANDIDATES); "-" where a cell was probed before
    the space was added (means and worst cases over the cells that have it)."""
    def z(test: np.ndarray, held: np.ndarray) -> np.ndarray:
        return (test - held.mean()) / held.std()

    def auroc(d, score) -> float:
        return np.nan if score is None else roc_auc_score(d["is_ood"], score) * 100

    cols = ["geom", "0.5f+g", *(f"{s} alone" for s in SPACES), *("+" + "&".join(c) for c in CANDIDATES)]
    print("| cell | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    rows = []
    for p in sorted(glob.glob(str(out / "*.npz"))):
        d = np.load(p)
        base = 0.5 * z(d["f_test"], d["f_held"]) + z(d["g_test"], d["g_held"])
        zk = {s: z(d[f"{s}_test"][:, 1], d[f"{s}_held"][:, 1]) for s in SPACES if f"{s}_test" in d}
        scores = [d["f_test"], base, *(d[f"{s}_test"][:, 1] if s in zk else None for s in SPACES),
                  *(base + sum(zk[s] for s in c) / len(c) if all(s in zk for s in c) else None for c in CANDIDATES)]
        rows.append([auroc(d, s) for s in scores])
        print(f"| {Path(p).stem} | " + " | ".join("-" if np.isnan(v) else f"{v:.2f}" for v in rows[-1]) + " |")
    a = np.array(rows)
    print("| mean | " + " | ".join(f"{v:.2f}" for v in np.nanmean(a, 0)) + " |")
    print("| worst (x - geom) | " + " | ".join(f"{v:.2f}" for v in np.nanmin(a - a[:, :1], 0)) + " |")
    print("| worst (x - pix) | " + " | ".join(f"{v:.2f}" for v in np.nanmin(a - a[:, 8:9], 0)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["run", "table", "spaces"])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("oe", nargs="?")
    ap.add_argument("classes", nargs="?")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("runs/cache-letters"))
    ap.add_argument("--out", type=Path, default=Path("runs/probe-layers-knn"))
    ap.add_argument("--space", default="z4all", choices=["z4id", "z4all", "z3p2", "z3p1", "z2p2", "z2p3", "z2p4", "z1p2", "z34", "pix"], help="table: the kNN space combined")
    ap.add_argument("--k", type=int, default=5, choices=KS, help="table: the k combined")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.what == "table":
        return table(a.out, a.space, KS.index(a.k))
    if a.what == "spaces":
        return spaces_table(a.out)
    run(a.dataset, a.oe, [int(c) for c in a.classes.split(",")], a.seed, a.cache, a.out)


if __name__ == "__main__":
    main()
