"""Reliability diagrams of the ``calibration`` suite (Guo et al. 2017, Fig. 1; seed 002's notes):
per seed, the predictive distributions of the classifier before (``msp``) and after
(``temperature``) temperature scaling, of the deep ensemble and of MC dropout on the
in-distribution test images, each binned by confidence (15 bins) with its ECE. The networks come
from the upstream cache the suite filled, so nothing is trained again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oodscope.bench.config import BenchConfig
from oodscope.bench.fitting import shared_upstream
from oodscope.bench.presets import cell_settings
from oodscope.bench.cells import make_cache
from oodscope.calibration import BINS, expected_calibration_error, reliability_bins
from oodscope.detectors import detector_class
from oodscope.figures.reliability import reliability_figure
from oodscope.figures.style import save_png
from oodscope.protocols import DataStore, MultiClass

TITLES = {"msp": "before (T = 1)", "temperature": "temperature scaled", "ensemble": "deep ensemble",
          "mc-dropout": "MC dropout"}


def write_reliability(config: BenchConfig) -> list[Path]:
    """``reliability_seed<S>.png`` in the run directory for every seed of ``config`` (a
    multi-class run of the calibration suite's methods)."""
    protocol = config.protocol
    if not isinstance(protocol, MultiClass):
        return []
    store, cache, paths = DataStore(config.run.data_root, config.run.download), make_cache(config), []
    methods = [m for m in TITLES if m in config.methods]
    for seed in config.seeds:
        task = protocol.task(protocol.cell("msp", seed, config.preset, 0), store)
        inside = ~task.is_ood
        labels = task.test_class[inside]
        panels = {}
        for m in methods:
            settings = cell_settings(protocol.cell(m, seed, config.preset, 0), config.run.device, config.overrides, False)
            det = detector_class(m)(**settings)
            upstream, _ = shared_upstream(type(det), det.config, task, cache)
            det.fit(task.train, validation=task.validation, upstream=upstream)
            logits = torch.as_tensor(det.outputs(task.test.images[inside])["logits"], dtype=torch.float64)
            probs = torch.softmax(logits, dim=1).numpy()
            ece = [100 * expected_calibration_error(probs, labels, BINS, k) for k in ("centre", "mean")]
            title = TITLES[m] + (f" (T = {det.fitted['temperature']:.2f})" if m == "temperature" else "")
            panels[title] = (reliability_bins(probs, labels, BINS), f"ECE {ece[0]:.2f} % (notes), {ece[1]:.2f} % (bin means)")
        if panels:
            fig = reliability_figure(panels, f"{protocol.benchmark}, seed {seed}: in-distribution test images "
                                             f"({int(np.sum(inside))})")
            paths.append(save_png(fig, config.directory / f"reliability_seed{seed}.png"))
    return paths
