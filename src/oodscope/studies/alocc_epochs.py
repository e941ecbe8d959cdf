"""The experiment of an anonymous blog post implementing ALOCC in Chainer on MNIST (author, title
and date not given; n.d.): ALOCC trained on the digit '1', evaluated after every epoch on the MNIST
test images of '1' (normal) and '0' (anomalous): accuracy and F1 with the discriminator's 0.5
threshold (a score above 0), the anomalous '0' as the positive class, for D(R(x)) and for D(x); and
the AUROC of both. Several seeds show how stable the training is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import f1_score, roc_auc_score

from oodscope.detectors import create
from oodscope.detectors.alocc import ALOCCDetector
from oodscope.figures.style import new_figure, save_png
from oodscope.studies.base import Study, StudyOptions, StudyOutput, markdown_table, subset

NORMAL, ANOMALY = 1, 0
DEFAULT_EPOCHS = 10
SCORES = ("d_of_r", "d")
LABELS = {"d_of_r": "D(R(x))", "d": "D(x)"}


def _evaluate(det: ALOCCDetector, x: torch.Tensor, is_anomaly: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    saved = det.config["score"]
    for s in SCORES:
        det.config["score"] = s
        score = det._score(x)
        pred = score > 0
        out[f"{s}_accuracy"] = float((pred == is_anomaly).mean())
        out[f"{s}_f1"] = float(f1_score(is_anomaly, pred, zero_division=0))
        out[f"{s}_auroc"] = float(roc_auc_score(is_anomaly, score))
    det.config["score"] = saved
    return out


def alocc_epochs(options: StudyOptions) -> StudyOutput:
    train_all, test_all = options.data("train"), options.data("test")
    keep = np.isin(test_all.labels, [NORMAL, ANOMALY])
    x = torch.from_numpy(test_all.images[keep]).float() / 255.0
    is_anomaly = test_all.labels[keep] == ANOMALY
    epochs = options.epochs or DEFAULT_EPOCHS
    history: list[dict[str, Any]] = []
    last: ALOCCDetector | None = None
    for seed in options.seeds:
        train = subset(train_all.subset(train_all.labels == NORMAL), options.n_train, seed)

        def record(epoch: int, det: ALOCCDetector, seed: int = seed) -> None:
            history.append({"seed": seed, "epoch": epoch, **_evaluate(det, x, is_anomaly)})

        ALOCCDetector.on_epoch = record
        try:
            last = create("alocc", epochs=epochs, seed=seed, progress=options.progress).fit(train)
        finally:
            ALOCCDetector.on_epoch = None
    out = StudyOutput(figures=[_curves(history, options), _reconstructions(last, test_all, options)])
    keys = [f"{s}_{m}" for s in SCORES for m in ("accuracy", "f1", "auroc")]
    out.table = (["seed", "epoch", *keys], [[h["seed"], h["epoch"], *[f"{h[k]:.4f}" for k in keys]] for h in history])
    final = [h for h in history if h["epoch"] == epochs]
    best = {k: [max(h[k] for h in history if h["seed"] == s) for s in options.seeds] for k in keys}
    rows = [[f"epoch {epochs}, seed {h['seed']}", *[f"{100 * h[k]:.1f}" for k in keys]] for h in final]
    rows.append(["best epoch, mean over seeds", *[f"{100 * np.mean(best[k]):.1f}" for k in keys]])
    out.lines = [f"Normal digit '{NORMAL}', anomalous '{ANOMALY}' ({int((~is_anomaly).sum())} and {int(is_anomaly.sum())} "
                 f"test images), {epochs} epochs, seeds {', '.join(map(str, options.seeds))}; in %.", "",
                 *markdown_table(["after", *keys], rows)]
    return out


def _curves(history: list[dict[str, Any]], options: StudyOptions) -> Path:
    fig = new_figure(15, 4)
    titles = {"accuracy": "accuracy", "f1": "F1 (anomaly '0' positive)", "auroc": "AUROC"}
    for i, (metric, label) in enumerate(titles.items()):
        ax = fig.add_subplot(1, 3, i + 1)
        for j, s in enumerate(SCORES):
            for k, seed in enumerate(options.seeds):
                pts = [(h["epoch"], h[f"{s}_{metric}"]) for h in history if h["seed"] == seed]
                ax.plot(*zip(*pts), marker="o", ms=3, color=f"C{j}", alpha=0.9 if k == 0 else 0.45,
                        label=f"{LABELS[s]}" + (f", seed {seed}" if len(options.seeds) > 1 else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"ALOCC, '{NORMAL}' normal vs '{ANOMALY}': {label.split(' ')[0]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_png(fig, Path(options.out) / "alocc_epochs.png")


def _reconstructions(det: ALOCCDetector, test_all, options: StudyOptions) -> Path:
    """Noisy test images of every digit and R's outputs (the blog post's second figure)."""
    g = torch.Generator().manual_seed(options.seeds[-1])
    idx = [int(np.flatnonzero(test_all.labels == d)[0]) for d in range(10)]
    x = torch.from_numpy(test_all.images[idx]).float() / 255.0
    noisy = (x + float(det.config["noise_std"]) * torch.randn(x.shape, generator=g)).clamp(0, 1)
    rec = det.reconstruct(noisy)
    fig = new_figure(10, 2.4)
    for r, (title, imgs) in enumerate((("noisy input", noisy), ("R(noisy input)", rec))):
        for c in range(10):
            ax = fig.add_subplot(2, 10, r * 10 + c + 1)
            ax.imshow(imgs[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    return save_png(fig, Path(options.out) / "alocc_reconstructions.png")


ALOCC_EPOCHS = Study("alocc-epochs",
                     "an anonymous blog post implementing ALOCC in Chainer on MNIST (author, title and date "
                     "not given; n.d.)",
                     "accuracy and F1 over training epochs, normal '1' versus anomalous '0'", alocc_epochs)
