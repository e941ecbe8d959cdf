"""ECE and NLL of the multi-class protocol's classifier before and after temperature scaling, and
its reliability diagrams (seed 002's notes; Guo et al. 2017). A measurement script until the
``calibration`` suite exists:

    OODSCOPE_DATA=../shared/data python scripts/calibration_mnist.py --protocol mnist-vs-letters \
        --seeds 0,1,2 --cache runs/cache-msp --out runs/calibration

T is fitted on the protocol's validation split (10 % of the training images); ECE (15 bins) and
NLL are measured on the in-distribution test images. Writes OUT/calibration.md and
OUT/reliability_seed<S>.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from oodscope.atomic import write_text_atomic
from oodscope.bench.fitting import shared_upstream
from oodscope.calibration import (BINS, TemperatureScaler, expected_calibration_error, negative_log_likelihood,
                                  reliability_bins)
from oodscope.detectors import create, detector_class, settings_for
from oodscope.detectors.inputs import as_images
from oodscope.detectors.upstream import UpstreamCache
from oodscope.figures.reliability import reliability_figure
from oodscope.figures.style import save_png
from oodscope.protocols import make_protocol
from oodscope.protocols.base import DataStore


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="mnist-vs-letters")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    protocol, store, cache = make_protocol(a.protocol), DataStore(), UpstreamCache(a.cache)
    rows = ["| seed | T | accuracy | ECE before | ECE after | ECE (bin means) before | after | NLL before | NLL after |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for seed in [int(s) for s in a.seeds.split(",")]:
        task = protocol.task(protocol.cell("msp", seed, a.preset, 0), store)
        config = create("msp", **settings_for("msp", a.preset), seed=seed).config
        clf, _ = shared_upstream(detector_class("msp"), config, task, cache)
        val_logits = clf.logits(as_images(task.validation, "validation")).double().numpy()
        inside = ~task.is_ood
        logits = clf.logits(as_images(task.test.images[inside], "test")).double().numpy()
        labels = task.test_class[inside]
        scaler = TemperatureScaler().fit(val_logits, task.validation.labels)
        before, after = softmax(logits), scaler.probabilities(logits)
        e = {k: [100 * expected_calibration_error(p, labels, BINS, k) for p in (before, after)] for k in ("centre", "mean")}
        nll = [negative_log_likelihood(p, labels) for p in (before, after)]
        acc = 100 * float((logits.argmax(axis=1) == labels).mean())
        rows.append(f"| {seed} | {scaler.temperature:.3f} | {acc:.2f} | {e['centre'][0]:.2f} | {e['centre'][1]:.2f} | "
                    f"{e['mean'][0]:.2f} | {e['mean'][1]:.2f} | {nll[0]:.4f} | {nll[1]:.4f} |")
        note = [f"ECE {e['centre'][i]:.2f} % (notes), {e['mean'][i]:.2f} % (bin means)" for i in (0, 1)]
        panels = {"before (T = 1)": (reliability_bins(before, labels, BINS), note[0]),
                  f"after (T = {scaler.temperature:.2f})": (reliability_bins(after, labels, BINS), note[1])}
        save_png(reliability_figure(panels, f"{a.protocol} classifier, seed {seed}, in-distribution test images"),
                 out / f"reliability_seed{seed}.png")
        print(rows[-1], flush=True)
    text = (f"# Calibration of the {a.protocol} classifier (preset {a.preset})\n\nECE in %, {BINS} bins; "
            "'ECE' uses the bin centre as conf(B_m) (seed 002's notes), 'bin means' the mean confidence (Guo et al.).\n\n"
            + "\n".join(rows) + "\n")
    write_text_atomic(out / "calibration.md", text)
    print(text)


if __name__ == "__main__":
    main()
