"""Reliability diagrams of the ``calibration`` suite (Guo, Pleiss, Sun & Weinberger, "On
calibration of modern neural networks", ICML 2017, Fig. 1): per seed, the predictive
distributions of the classifier before (``msp``) and after (``temperature``) temperature scaling,
of the deep ensemble and of MC dropout on the in-distribution test images, each binned by
confidence (15 bins) with its ECE. Drawn from what the run saved — each cell's logits and the test
images' classes beside its scores (:attr:`oodscope.bench.config.BenchConfig.keep`) — so no model is
fitted here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from oodscope.bench.paper.methods import RELIABILITY_PANELS
from oodscope.figures.reliability import reliability_figure
from oodscope.figures.style import save_png
from oodscope.results import load_scores


def reliability_panels(directory: str | os.PathLike[str], rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per seed, per panel title: the reliability bins and the ECE note, from the saved logits of
    the first row of each method of :data:`RELIABILITY_PANELS` (rows without saved logits are left out)."""
    out: dict[int, dict[str, Any]] = {}
    for method, title in RELIABILITY_PANELS.items():
        for seed in sorted({int(r["seed"]) for r in rows if r.get("method") == method}):
            row = next(r for r in rows if r.get("method") == method and int(r["seed"]) == seed)
            arrays = load_scores(directory, row)
            if arrays is None or "logits" not in arrays or "test_class" not in arrays:
                continue
            from oodscope.calibration.ece import BINS, expected_calibration_error, reliability_bins  # torch: only here

            inside = arrays["test_class"] >= 0
            probs = softmax(arrays["logits"][inside].astype(np.float64), axis=1)
            labels = arrays["test_class"][inside]
            ece = [100 * expected_calibration_error(probs, labels, BINS, k) for k in ("centre", "mean")]
            temperature = (row.get("metrics") or {}).get("temperature")
            name = title + (f" (T = {temperature:.2f})" if temperature is not None else "")
            out.setdefault(seed, {"n": int(inside.sum()), "benchmark": (row.get("protocol_fields") or {}).get("benchmark") or row.get("dataset")})
            out[seed][name] = (reliability_bins(probs, labels, BINS),
                               f"ECE {ece[0]:.2f} % (notes), {ece[1]:.2f} % (bin means)")
    return out


def write_reliability(directory: str | os.PathLike[str], rows: list[dict[str, Any]]) -> list[Path]:
    """``reliability_seed<S>.png`` in ``directory`` for every seed whose rows saved their logits."""
    paths = []
    for seed, panels in reliability_panels(directory, rows).items():
        n, benchmark = panels.pop("n"), panels.pop("benchmark")
        if panels:
            fig = reliability_figure(panels, f"{benchmark}, seed {seed}: in-distribution test images ({n})")
            paths.append(save_png(fig, Path(directory) / f"reliability_seed{seed}.png"))
    return paths
