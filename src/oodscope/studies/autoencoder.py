"""The study of Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional
variational autoencoder" (n.d.), with oodscope's ``ae`` and ``vae`` detectors, trained on MNIST
digits of every class (Hirokawa's set-up) and shown unseen test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oodscope.data import ImageSet
from oodscope.detectors import create
from oodscope.figures.style import new_figure, save_png
from oodscope.studies.base import Study, StudyOptions, StudyOutput, markdown_table, subset

SOURCE = ('Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional variational autoencoder" '
          "(n.d.; convolutional VAE for anomaly detection on MNIST)")
DEFAULT_EPOCHS = 10
DEFAULT_TRAIN = 20000  # training images drawn from MNIST's 60,000 (a few minutes on a CPU)


def _train(method: str, latent: int, train: ImageSet, options: StudyOptions):
    epochs = options.epochs or DEFAULT_EPOCHS
    det = create(method, latent=latent, epochs=epochs, seed=options.seeds[0], progress=options.progress)
    return det.fit(train)


def _data(options: StudyOptions) -> tuple[ImageSet, ImageSet]:
    train = subset(options.data("train"), options.n_train or DEFAULT_TRAIN, options.seeds[0])
    return train, options.data("test")


def latent(options: StudyOptions) -> StudyOutput:
    """Figures 4 and 5: test images in the 2-D and 3-D latent spaces of the AE and the VAE."""
    train, test = _data(options)
    x = torch.from_numpy(test.images).float() / 255.0
    labels = test.labels
    out = StudyOutput()
    rows = []
    for dim in (2, 3):
        fig = new_figure(11, 5)
        for i, method in enumerate(("ae", "vae")):
            z = _train(method, dim, train, options).encode(x)
            ax = fig.add_subplot(1, 2, i + 1, **({"projection": "3d"} if dim == 3 else {}))
            for digit in range(10):
                pts = z[labels == digit]
                coords = [pts[:, j] for j in range(dim)]
                ax.scatter(*coords, s=2, alpha=0.5, color=f"C{digit}", label=str(digit))
            ax.set_title(f"{method.upper()}, {dim}-d latent ({len(x)} unseen test images)")
            spread = np.linalg.norm(z - z.mean(axis=0), axis=1)
            rows.append([method, dim, f"{spread.mean():.3f}", f"{np.percentile(spread, 99):.3f}"])
        fig.axes[0].legend(markerscale=5, fontsize=8, title="digit", loc="best")
        out.figures.append(save_png(fig, Path(options.out) / f"ae_latent_{dim}d.png"))
    out.table = (["method", "latent", "mean distance to centroid", "99th percentile"], rows)
    out.lines = ["Latents of unseen test images; the spread rows measure how compact each map is "
                 "(Hirokawa: the VAE's clusters are tighter, with fewer gaps, than the AE's).", "",
                 *markdown_table(*out.table)]
    return out


def errors(options: StudyOptions) -> StudyOutput:
    """Figure 7: reconstruction errors of training images versus unseen images (64-d VAE)."""
    train, test = _data(options)
    det = _train("vae", 64, train, options)
    e_train = det.score(train)
    e_test = det.score(test)
    fig = new_figure(11, 4.2)
    bins = np.linspace(0, float(np.percentile(np.concatenate([e_train, e_test]), 99.9)), 60)
    tail = float(np.percentile(e_train, 99))
    for i, (lo, title) in enumerate(((0.0, "a) all images"), (tail, f"b) errors above {tail:.4f} (training 99th pct.)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        edges = bins if i == 0 else np.linspace(tail, float(max(e_train.max(), e_test.max())), 40)
        # weights: each bar is the share of its set (the two sets differ in size)
        for e, what in ((e_train, "training"), (e_test, "unseen")):
            sel = e[e >= lo]
            ax.hist(sel, bins=edges, alpha=0.6, weights=np.full(len(sel), 100.0 / len(e)),
                    label=f"{what} images ({len(e)})")
        ax.set_xlabel("reconstruction error (mean squared, per pixel)")
        ax.set_ylabel("% of the set's images")
        ax.set_title(title)
        ax.legend()
    out = StudyOutput(figures=[save_png(fig, Path(options.out) / "ae_errors.png")])
    above = {name: float((e > tail).mean()) for name, e in (("training", e_train), ("unseen", e_test))}
    rows = [["training", len(e_train), f"{e_train.mean():.5f}", f"{100 * above['training']:.2f}"],
            ["unseen", len(e_test), f"{e_test.mean():.5f}", f"{100 * above['unseen']:.2f}"]]
    out.table = (["images", "count", "mean error", "% above the training 99th percentile"], rows)
    out.lines = ["VAE with a 64-d latent. Hirokawa's figure 7: errors of unseen images are shifted to the right, "
                 "their share grows among the large errors.", "", *markdown_table(*out.table)]
    return out


def reconstructions(options: StudyOptions) -> StudyOutput:
    """Figures 6 and 8: unseen inputs and their reconstructions with a 64-d and a 3-d latent."""
    train, test = _data(options)
    pick = np.random.default_rng(options.seeds[0]).choice(len(test), size=16, replace=False)
    x = torch.from_numpy(test.images[pick]).float() / 255.0
    grids = [("input", x)]
    errs = []
    for dim in (64, 3):
        det = _train("vae", dim, train, options)
        grids.append((f"VAE, {dim}-d latent", det.reconstruct(x)))
        errs.append([dim, f"{float(det.score(test).mean()):.5f}"])
    fig = new_figure(12, 0.95 * len(grids))
    for r, (title, imgs) in enumerate(grids):
        for c in range(len(pick)):
            ax = fig.add_subplot(len(grids), len(pick), r * len(pick) + c + 1)
            ax.imshow(imgs[c].permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    out = StudyOutput(figures=[save_png(fig, Path(options.out) / "ae_reconstructions.png")])
    out.table = (["latent", "mean reconstruction error on the test set"], errs)
    out.lines = ["16 unseen test images and the VAE's reconstructions (decoded means). Hirokawa: a 64-d latent "
                 "corrects local defects; a 3-d latent gives blurred, typical digits and sometimes the wrong digit.", "",
                 *markdown_table(*out.table, numeric_from=0)]
    return out


AE_LATENT = Study("ae-latent", SOURCE, "2-D and 3-D latent spaces of the convolutional AE and VAE", latent)
AE_ERRORS = Study("ae-errors", SOURCE, "reconstruction errors of training versus unseen images", errors)
AE_RECONSTRUCTIONS = Study("ae-reconstructions", SOURCE, "inputs and reconstructions, 64-d and 3-d latents",
                           reconstructions)
