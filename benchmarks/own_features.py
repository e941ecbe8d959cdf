"""Features from another task (the PANDA / DN2 idea, with nothing downloaded): a classifier trained
in plain torch on one data set, frozen, as the feature extractor of one-class detection on another.

1. A LeNet-like CNN (modules ``features``, ``flatten``, ``hidden``, ``fc``) trained in plain torch
   on EMNIST letters (26 classes); its test accuracy.
2. One-class MNIST on its penultimate features (``hidden``, 128-d after ReLU): for each digit c,
   ``deep-knn`` (k=1) and ``gaussian`` fitted through ``ModelAdapter(model, penultimate="hidden")``
   on the training images of c only, scoring the whole MNIST test set (OOD = every other digit);
   the PyOD peers (``knn``, ``iforest``, ``ocsvm``, ``ecod``) on the same feature vectors.
3. The reverse: the same CNN trained on MNIST digits, one-class EMNIST letters (each letter of
   ``--letters`` in turn; test = the whole letters test split).
4. The adapter's cost: images/s of ``msp`` and ``energy`` through
   ``ModelAdapter(model, penultimate="hidden", head="fc")`` on the letters classifier against the
   model's own forward pass, same images, same batch size (median of ``--repeats``, interleaved).

    python benchmarks/own_features.py --threads 2 --out runs/own_features.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from oodscope.data import load
from oodscope.detectors import create
from oodscope.metrics import evaluate
from oodscope.upstream.adapter import ModelAdapter

DETECTORS = ("deep-knn", "gaussian")
CL_NAME = "plain forward, channels_last strides (from_numpy(uint8).float()/255)"
PEERS = ("knn", "iforest", "ocsvm", "ecod")
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def loadavg() -> list[float]:
    """1-, 5- and 15-minute load averages: other processes on the machine skew every timing."""
    return [round(v, 2) for v in os.getloadavg()]


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LeNet(nn.Module):
    """conv(32)-pool-conv(64)-pool, a 128-unit hidden layer (the penultimate features), a linear head."""

    def __init__(self, classes: int, widths: tuple[int, int] = (32, 64), hidden: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.hidden = nn.Sequential(nn.Linear(widths[1] * 7 * 7, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hidden(self.flatten(self.features(x))))


def to_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255)


def train_classifier(images: np.ndarray, labels: np.ndarray, classes: int, epochs: int, seed: int,
                     batch: int = 128, lr: float = 1e-3) -> tuple[LeNet, list[dict[str, float]]]:
    """Plain torch: Adam, cross-entropy, seeded shuffles; float32 throughout."""
    seed_all(seed)
    model = LeNet(classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = to_float(images), torch.from_numpy(labels).long()
    g = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        t, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        for idx in torch.randperm(len(x), generator=g).split(batch):
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": total / seen, "train_acc": 100 * correct / seen,
                        "seconds": time.perf_counter() - t})
        log(f"  epoch {epoch + 1}/{epochs}: loss {total / seen:.4f}, train acc {100 * correct / seen:.2f} %, "
            f"{time.perf_counter() - t:.1f} s")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, history


@torch.no_grad()
def logits_of(model: LeNet, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(to_float(images[i:i + batch])) for i in range(0, len(images), batch)])


@torch.no_grad()
def features_of(model: LeNet, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """The penultimate features (``hidden``'s output) in plain torch: the vectors the peers get."""
    model.eval()
    return torch.cat([model.hidden(model.flatten(model.features(to_float(images[i:i + batch]))))
                      for i in range(0, len(images), batch)]).numpy()


def one_class(model: LeNet, train, test, classes: list[int], names: list[str], peers: tuple[str, ...],
              ocsvm_max: int, seed: int) -> dict[str, Any]:
    """Per in-distribution class: AUROC (percent) and fit / score seconds of each detector."""
    adapter = ModelAdapter(model, penultimate="hidden")
    t = time.perf_counter()
    f_test = features_of(model, test.images)
    f_train = features_of(model, train.images)
    feature_seconds = time.perf_counter() - t
    # the adapter's features must be the plain model's
    check = adapter.taps(to_float(test.images[:512]))["hidden"].numpy()
    feature_diff = float(np.abs(check - f_test[:512]).max())
    log(f"  features: train {f_train.shape}, test {f_test.shape} in {feature_seconds:.1f} s; "
        f"adapter vs plain max |diff| {feature_diff:.2e}")
    rows: dict[str, Any] = {}
    for c in classes:
        name = names[c]
        inside = train.labels == c
        is_ood = test.labels != c
        row: dict[str, Any] = {"n_train": int(inside.sum()), "n_test_in": int((~is_ood).sum()), "n_test": len(is_ood)}
        for method in DETECTORS:
            det = create(method, k=1) if method == "deep-knn" else create(method)
            t = time.perf_counter()
            det.fit(train.images[inside], upstream=adapter)
            fit_s = time.perf_counter() - t
            scores = det.score(test.images)
            row[method] = {"auroc": evaluate(scores, is_ood)["auroc"], "fit_s": fit_s,
                           "score_s": time.perf_counter() - t - fit_s, **det.summary()}
        ftr = f_train[inside]
        for method in peers:
            det = create(method)
            x = ftr
            if method == "ocsvm" and len(x) > ocsvm_max:
                x = x[np.sort(np.random.default_rng(seed + c).choice(len(x), ocsvm_max, replace=False))]
            t = time.perf_counter()
            det.fit(x)
            fit_s = time.perf_counter() - t
            scores = det.score(f_test)
            row[method] = {"auroc": evaluate(scores, is_ood)["auroc"], "fit_s": fit_s,
                           "score_s": time.perf_counter() - t - fit_s, "n_fit": len(x)}
        rows[name] = row
        log(f"  {name}: " + ", ".join(f"{m} {row[m]['auroc']:.2f}" for m in (*DETECTORS, *peers)))
    methods = (*DETECTORS, *peers)
    mean = {m: float(np.mean([rows[n][m]["auroc"] for n in rows])) for m in methods}
    return {"classes": rows, "mean": mean, "feature_dim": int(f_test.shape[1]),
            "adapter_vs_plain_feature_max_abs_diff": feature_diff}


def cross_checks(model: LeNet, train, test, c: int) -> dict[str, Any]:
    """oodscope's deep-knn (raw features, k=1) against PyOD's kNN (k=1), and gaussian against
    scikit-learn's LedoitWolf Mahalanobis distance, on the same features of class ``c``."""
    from sklearn.covariance import LedoitWolf

    adapter = ModelAdapter(model, penultimate="hidden")
    inside = train.labels == c
    ftr, fte = features_of(model, train.images[inside]), features_of(model, test.images)
    raw = create("deep-knn", k=1, normalize=False).fit(train.images[inside], upstream=adapter).score(test.images)
    pyod1 = create("knn", n_neighbors=1).fit(ftr).score(fte)
    gauss = create("gaussian").fit(train.images[inside], upstream=adapter).score(test.images)
    lw = np.sqrt(np.maximum(LedoitWolf().fit(ftr.astype(np.float64)).mahalanobis(fte.astype(np.float64)), 0))
    return {"class": c,
            "deepknn_raw_vs_pyod_knn1_max_abs_diff": float(np.abs(raw - pyod1).max()),
            "deepknn_raw_scale": float(np.abs(pyod1).max()),
            "gaussian_vs_sklearn_ledoitwolf_max_rel_diff": float(np.abs(gauss - lw).max() / np.abs(lw).max()),
            "gaussian_vs_sklearn_spearman": float(np.corrcoef(np.argsort(np.argsort(gauss)),
                                                              np.argsort(np.argsort(lw)))[0, 1])}


def adapter_cost(model: LeNet, train, test, n_fit: int, n_score: int, repeats: int, seed: int) -> dict[str, Any]:
    """Images/s of msp and energy through the adapter against ``model(x)`` in batches of the same size.

    Two plain baselines, for the two memory formats a float batch can have. ``torch.from_numpy(uint8)
    .float() / 255`` inherits NumPy's strides: for these one-channel images (784, 1, 28, 1), which
    torch's convolutions read as ``channels_last``. A batch made any other way (``torch.stack``, a
    ``DataLoader``) has NCHW strides (784, 784, 28, 1). On this CPU the two formats run at different
    speeds, so each adapter run is set beside the plain forward in its own format: the default
    adapter hands the model NCHW batches (as plain torch makes them), ``channels_last=True`` hands it
    ``channels_last`` ones."""
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(len(train), n_fit, replace=False))
    x_u8 = test.images[np.sort(rng.choice(len(test), n_score, replace=False))]
    x_f = to_float(x_u8)
    x_nchw = x_f.clone(memory_format=torch.contiguous_format)
    dets = {}
    for method in ("msp", "energy"):
        adapter = ModelAdapter(model, penultimate="hidden", head="fc")
        dets[method] = create(method).fit(train.images[fit_idx], labels=train.labels[fit_idx], upstream=adapter)
    for method in ("msp", "energy"):
        dets[f"{method}, channels_last=True"] = create(method).fit(
            train.images[fit_idx], labels=train.labels[fit_idx],
            upstream=ModelAdapter(model, penultimate="hidden", head="fc", channels_last=True))
    batch = int(dets["msp"].upstream.settings["batch_size"])
    base_name = "plain forward, NCHW strides"

    @torch.no_grad()
    def plain(x: torch.Tensor) -> torch.Tensor:
        model.eval()
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])

    runs = {base_name: lambda: plain(x_nchw),
            CL_NAME: lambda: plain(x_f),
            "msp (uint8 in)": lambda: dets["msp"].score(x_u8),
            "energy (uint8 in)": lambda: dets["energy"].score(x_u8),
            "msp (float32 [0,1] tensor in)": lambda: dets["msp"].score(x_f),
            "energy (float32 [0,1] tensor in)": lambda: dets["energy"].score(x_f),
            "msp, adapter channels_last=True (uint8 in)": lambda: dets["msp, channels_last=True"].score(x_u8),
            "energy, adapter channels_last=True (uint8 in)": lambda: dets["energy, channels_last=True"].score(x_u8),
            "adapter logits only (float32 tensor in)": lambda: dets["msp"].upstream.logits(x_f)}
    for fn in runs.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # interleaved, the order rotated each repeat
            c, t = time.process_time(), time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
        log(f"  repeat {r + 1}/{repeats} (load {loadavg()[0]}): "
            + ", ".join(f"{k} {n_score / v[-1]:.0f}/s" for k, v in times.items()))
    ips = {k: n_score / statistics.median(v) for k, v in times.items()}
    base = ips[base_name]
    plain_s = times[base_name]
    paired = {k: statistics.median(p / s for p, s in zip(plain_s, v)) for k, v in times.items()}
    logits = plain(x_nchw)
    msp_ref = -torch.softmax(logits.double(), 1).max(1).values.numpy()
    energy_ref = -torch.logsumexp(logits.double(), 1).numpy()
    return {"batch_size": batch, "n_score": n_score, "n_fit": n_fit, "repeats": repeats, "baseline": base_name,
            "channels_last_baseline": CL_NAME,
            "paired_ratio_same_format": {k: statistics.median(
                p / s for p, s in zip(times[CL_NAME if "channels_last" in k else base_name], v)) for k, v in times.items()},
            "ratio_to_plain_channels_last": {k: v / ips[CL_NAME] for k, v in ips.items()},
            "strides": {"from_numpy(uint8).float()/255": list(x_f.stride()), "NCHW": list(x_nchw.stride()),
                        "adapter input, default": list(dets["msp"].upstream._input(x_nchw[:2]).stride()),
                        "adapter input, channels_last=True":
                            list(dets["msp, channels_last=True"].upstream._input(x_nchw[:2]).stride())},
            "images_per_s": ips, "ratio_to_plain": {k: v / base for k, v in ips.items()},
            "paired_ratio_median": paired,
            "cpu_s_median": {k: statistics.median(v) for k, v in cpu.items()},
            "cpu_ratio_to_plain": {k: statistics.median(cpu[base_name]) / statistics.median(v) for k, v in cpu.items()},
            "seconds_all": times, "cpu_seconds_all": cpu,
            "msp_vs_plain_max_abs_diff": float(np.abs(dets["msp"].score(x_u8) - msp_ref).max()),
            "energy_vs_plain_max_abs_diff": float(np.abs(dets["energy"].score(x_u8) - energy_ref).max())}


def table(res: dict[str, Any], methods: tuple[str, ...]) -> str:
    lines = ["| class | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for name, row in res["classes"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]['auroc']:.2f}" for m in methods) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{res['mean'][m]:.2f}**" for m in methods) + " |")
    return "\n".join(lines)


def classifier(kind: str, data, test, classes: int, epochs: int, seed: int, models: Path | None,
               out: dict[str, Any]) -> LeNet:
    """The classifier of ``kind`` ("letters" or "mnist"): trained here (and saved under ``models``),
    or, when ``models`` holds it, loaded; its test accuracy in ``out[f"{kind}_classifier"]``."""
    file = None if models is None else models / f"{kind}.pt"
    t = time.perf_counter()
    if file is not None and file.exists():
        model = LeNet(classes)
        model.load_state_dict(torch.load(file, weights_only=True))
        model.eval().requires_grad_(False)
        info = json.loads(file.with_suffix(".json").read_text())
        info["loaded_from"] = str(file)
        log(f"  {kind} classifier loaded from {file}")
    else:
        log(f"  LeNet on {data.name} train ({len(data)} images, {epochs} epochs)")
        model, hist = train_classifier(data.images, data.labels, classes, epochs, seed)
        info = {"history": hist, "params": sum(p.numel() for p in model.parameters()), "epochs": epochs,
                "train_s": time.perf_counter() - t}
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), file)
            file.with_suffix(".json").write_text(json.dumps(info, indent=1))
    info["test_acc"] = 100 * float((logits_of(model, test.images).argmax(1).numpy() == test.labels).mean())
    out[f"{kind}_classifier"] = info
    log(f"  {kind} classifier: test accuracy {info['test_acc']:.2f} % ({time.perf_counter() - t:.0f} s)")
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="1,2,3,4", help="which parts to run (1 is the letters classifier)")
    ap.add_argument("--models", default=None,
                    help="folder keeping the two classifiers' state dicts: loaded from it when there, else saved to it")
    ap.add_argument("--epochs-letters", type=int, default=3)
    ap.add_argument("--epochs-mnist", type=int, default=3)
    ap.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9", help="in-distribution digits of part 2")
    ap.add_argument("--letters", default="all", help="in-distribution letters of part 3: 'all', or e.g. 'a,f,k'")
    ap.add_argument("--peers", default=",".join(PEERS), help="PyOD peers on the features ('' for none)")
    ap.add_argument("--ocsvm-max", type=int, default=5000, help="at most this many training vectors for ocsvm")
    ap.add_argument("--cost-fit", type=int, default=5000, help="labelled letters images msp / energy are fitted on")
    ap.add_argument("--cost-images", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="runs/own_features.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    parts = {int(p) for p in args.parts.split(",")}
    models = None if args.models is None else Path(args.models)
    peers = tuple(p for p in args.peers.split(",") if p)
    out: dict[str, Any] = {"args": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "data": os.environ.get("OODSCOPE_DATA"), "wall_s": {}}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    out["loadavg"] = {"start": loadavg()}

    def save() -> None:
        out["loadavg"][next(reversed(out["wall_s"]), "start")] = loadavg()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(path)

    letters_train, letters_test = load("emnist-letters", "train"), load("emnist-letters", "test")
    mnist_train, mnist_test = load("mnist", "train"), load("mnist", "test")
    letter_names = list(string.ascii_lowercase)
    digit_names = [str(d) for d in range(10)]

    # 1. the letters classifier
    if parts & {1, 2, 4}:
        log("part 1: the EMNIST letters classifier")
        t = time.perf_counter()
        letters_model = classifier("letters", letters_train, letters_test, 26, args.epochs_letters, args.seed, models, out)
        out["wall_s"]["1_train_letters"] = time.perf_counter() - t
        save()

    # 2. one-class MNIST on the letters features
    if 2 in parts:
        digits = [int(d) for d in args.digits.split(",")]
        log(f"part 2: one-class MNIST on the letters classifier's features, digits {digits}")
        t = time.perf_counter()
        out["one_class_mnist"] = one_class(letters_model, mnist_train, mnist_test, digits, digit_names, peers,
                                           args.ocsvm_max, args.seed)
        out["one_class_mnist"]["cross_check"] = cross_checks(letters_model, mnist_train, mnist_test, digits[0])
        log(f"  cross-check: {out['one_class_mnist']['cross_check']}")
        out["wall_s"]["2_one_class_mnist"] = time.perf_counter() - t
        save()

    # 4 (before 3, on the letters classifier while it is at hand). the adapter's cost
    if 4 in parts:
        log("part 4: adapter cost, msp / energy vs the plain forward pass")
        t = time.perf_counter()
        out["adapter_cost"] = adapter_cost(letters_model, letters_train, letters_test, args.cost_fit, args.cost_images,
                                           args.repeats, args.seed)
        out["wall_s"]["4_adapter_cost"] = time.perf_counter() - t
        log(f"  {json.dumps(out['adapter_cost']['ratio_to_plain'])}")
        save()

    # 3. the reverse: the MNIST classifier, one-class letters
    if 3 in parts:
        log("part 3: the MNIST classifier")
        t = time.perf_counter()
        mnist_model = classifier("mnist", mnist_train, mnist_test, 10, args.epochs_mnist, args.seed, models, out)
        out["wall_s"]["3a_train_mnist"] = time.perf_counter() - t
        save()
        letters = list(range(26)) if args.letters == "all" else [letter_names.index(s) for s in args.letters.split(",")]
        log(f"part 3: one-class EMNIST letters on the MNIST classifier's features, letters "
            f"{''.join(letter_names[i] for i in letters)}")
        t = time.perf_counter()
        out["one_class_letters"] = one_class(mnist_model, letters_train, letters_test, letters, letter_names, peers,
                                             args.ocsvm_max, args.seed)
        out["wall_s"]["3b_one_class_letters"] = time.perf_counter() - t
    out["wall_s"]["total"] = time.perf_counter() - T0
    save()

    methods = (*DETECTORS, *peers)
    print(f"\n## Features from another task ({args.threads} threads, torch {torch.__version__})\n")
    print(", ".join(f"{k} classifier: test accuracy {out[f'{k}_classifier']['test_acc']:.2f} %"
                    for k in ("letters", "mnist") if f"{k}_classifier" in out) + "\n")
    if "one_class_mnist" in out:
        print("### One-class MNIST, EMNIST-letters classifier's penultimate features (AUROC %)\n")
        print(table(out["one_class_mnist"], methods))
    if "one_class_letters" in out:
        print("\n### One-class EMNIST letters, MNIST classifier's penultimate features (AUROC %)\n")
        print(table(out["one_class_letters"], methods))
    if "adapter_cost" in out:
        cost = out["adapter_cost"]
        print(f"\n### Adapter cost (letters classifier, {cost['n_score']} images, batch {cost['batch_size']}, "
              f"median of {cost['repeats']}; ratios to '{cost['baseline']}')\n")
        print("| run | images/s | ratio to plain | median of per-repeat ratios | same format: per-repeat ratios "
              "| CPU s (median) | CPU-time ratio |\n|---|---:|---:|---:|---:|---:|---:|")
        for k, v in cost["images_per_s"].items():
            print(f"| {k} | {v:.0f} | {cost['ratio_to_plain'][k]:.3f} | {cost['paired_ratio_median'][k]:.3f} | "
                  f"{cost['paired_ratio_same_format'][k]:.3f} | "
                  f"{cost['cpu_s_median'][k]:.2f} | {cost['cpu_ratio_to_plain'][k]:.3f} |")
    print("\nLoad average (1, 5, 15 min) after each part: " + "; ".join(f"{k} {v}" for k, v in out["loadavg"].items()))
    print("\nWall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in out["wall_s"].items()))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
