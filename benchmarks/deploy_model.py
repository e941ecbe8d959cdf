"""The model the deployment benchmarks use (serving, streaming, ONNX): `layers` (or `geom`) at the
cpu preset on MNIST digit 0 with 16 EMNIST-letter outliers, fitted once and saved; `msp` or
`energy`: the cpu classifier of split-mnist's in-distribution digits 0-5 (the threshold on 10 %
of them held out).

    python benchmarks/deploy_model.py runs/deploy/layers-mnist0 [--method layers] [--threads 2]
    python benchmarks/deploy_model.py runs/deploy/msp-mnist0-5 --method msp
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.pipeline import fit_with_threshold
from oodscope.protocols.outliers import sample_outliers


def mnist_model(out: Path, method: str = "layers", threads: int = 2):
    """The saved model at ``out``, fitted first if it is not there."""
    if (out / "config.json").exists():
        return load_model(out)
    torch.set_num_threads(threads)
    train = load("mnist", "train")
    if method in ("msp", "energy"):
        inside = train.subset(np.flatnonzero(train.labels <= 5))
        report = fit_with_threshold(method, inside, accept=0.95, overrides={"progress": False})
        report.detector.save(out)
        return report.detector
    zero = train.subset(np.flatnonzero(train.labels == 0))
    outliers = sample_outliers(load("emnist-letters", "train"), 16, 0) if method == "layers" else None
    report = fit_with_threshold(method, zero, outliers, accept=0.95, overrides={"progress": False})
    report.detector.save(out)
    return report.detector


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--method", default="layers", choices=["layers", "geom", "msp", "energy"])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    det = mnist_model(a.out, a.method, a.threads)
    print(f"{det.method} model at {a.out}, threshold {det.threshold:.6g}")
