"""Peak memory of fitting a detector on a model of yours on images streamed from a folder.

Writes N MNIST / EMNIST-letters training images as PNG files into a folder (once), builds a small
CNN in plain torch (random weights: memory does not depend on what it learnt) and fits ``deep-knn``
or ``gaussian`` through ``ModelAdapter`` on ``ImageStream.from_folder`` — or, with ``--in-memory``,
on the folder read into an array first — and prints the detector's facts. ``mahalanobis`` reads
the class labels too (the MNIST digit, or the letter's index mod 10, in the folder's file order;
they ride with the stream's batches) and two layers (``--taps``). Run it under
``/usr/bin/time -v`` and read "Maximum resident set size".

    python benchmarks/stream_memory.py --method deep-knn --n 100000 --folder runs/stream100k
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from oodscope.data import ImageStream, load, load_folder
from oodscope.detectors import create
from oodscope.upstream.adapter import ModelAdapter


def write_folder(folder: Path, n: int) -> None:
    if folder.is_dir() and len(list(folder.glob("*.png"))) >= n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    done = 0
    for name in ("mnist", "emnist-letters"):
        images = load(name, "train").images
        for img in images[: n - done]:
            Image.fromarray(img[0]).save(folder / f"{done:06d}.png")
            done += 1
        if done >= n:
            return


def folder_labels(n: int) -> np.ndarray:
    """The class of each file write_folder wrote, in file order: the digit, or the letter's index mod 10."""
    out = []
    for name in ("mnist", "emnist-letters"):
        out.append(load(name, "train").labels[: n - sum(map(len, out))] % 10)
    return np.concatenate(out).astype(np.int64)[:n]


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, 10)).eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="deep-knn", choices=["deep-knn", "gaussian", "mahalanobis"])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--folder", default="runs/stream100k")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--in-memory", action="store_true")
    args = ap.parse_args()
    folder = Path(args.folder)
    start = time.perf_counter()
    write_folder(folder, args.n)
    written = time.perf_counter()
    labelled = args.method == "mahalanobis"
    adapter = ModelAdapter(small_cnn(), penultimate="8", head="9" if labelled else None,
                           taps=["5"] if labelled else [], batch_size=args.batch)
    labels = folder_labels(args.n)
    if args.in_memory:
        train = load_folder(folder).images
    else:
        train = ImageStream.from_folder(folder, batch_size=args.batch)
        if labelled:
            images = train
            train = ImageStream(lambda: ((b, labels[i * args.batch:(i + 1) * args.batch]) for i, b in enumerate(images)))
    det = create(args.method).fit(train, labels=labels if labelled and args.in_memory else None, upstream=adapter)
    print({"method": args.method, "in_memory": args.in_memory, **{k: det.fitted[k] for k in ("seen", "dim") if k in det.fitted},
           "bank_size": det.fitted.get("bank_size"), "write_s": round(written - start, 1),
           "fit_s": round(time.perf_counter() - written, 1)})


if __name__ == "__main__":
    main()
