"""What ``attack`` and ``verify`` share: the classifier of a saved model and the labelled images
it is tested on (a data set's test split or a folder of class sub-folders, optionally a subset)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.data import load, load_folder
from oodscope.detectors import load as load_model
from oodscope.upstream.classifier import Classifier
from oodscope.inputs import as_images
from oodscope.errors import InputError


def classifier_of(model: str, command: str) -> tuple[Any, Classifier]:
    """The saved detector at ``model`` and its classifier; :class:`InputError` when it reads none
    (``command`` names what needs one)."""
    det = load_model(model)
    clf = det.upstream
    if not isinstance(clf, Classifier):
        raise InputError(f"{model}: {det.method} does not read one classifier; {command} needs a model of a "
                         "classifier-based detector (msp, energy, odin, ...)")
    return det, clf


def labelled_images(clf: Classifier, folder: str | None, dataset: str, data_root: str | None, n_images: int,
                    seed: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) in [0, 1] and their classes (N,) from ``folder`` (one sub-folder per class,
    in the model's class order) or the test split of ``dataset``; a random subset of ``n_images``
    (sorted, seeded by ``seed``) when 0 < ``n_images`` < all. Refuses classes or shapes the
    classifier does not take."""
    data = load_folder(folder, size=tuple(clf.fitted["size"]), channels=clf.fitted["channels"]) if folder else \
        load(dataset, "test", root=data_root)
    labels = np.asarray(data.labels, dtype=np.int64)
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= clf.fitted["classes"]:
        raise InputError(f"the images' classes ({labels.min()}..{labels.max()}) do not fit the model's "
                         f"{clf.fitted['classes']} classes")
    idx = np.arange(len(labels))
    if 0 < n_images < len(idx):
        idx = np.sort(np.random.default_rng(seed).permutation(len(idx))[:n_images])
    x = as_images(data.images[idx], what)
    if list(x.shape[1:]) != [clf.fitted["channels"], *clf.fitted["size"]]:
        raise InputError(f"images of shape {tuple(x.shape[1:])}; the model takes "
                         f"{clf.fitted['channels']}x{clf.fitted['size'][0]}x{clf.fitted['size'][1]}")
    return x, torch.as_tensor(labels[idx])
