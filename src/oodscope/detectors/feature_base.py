"""What the label-free detectors on feature vectors share (``deep-knn``, ``gaussian``, and the PyOD
peers on a model of yours): the features they read, batch by batch, with bounded memory.

The features are a model's penultimate vector: a model of yours (its ``penultimate`` module through
a :class:`~oodscope.upstream.adapter.ModelAdapter` passed as ``upstream=``: a backbone trained
elsewhere, the image-level use of pretrained features of Bergman, Cohen & Hoshen, "Deep nearest
neighbor anomaly detection", 2020, and Rippel, Mertens & Merhof, "Modeling the distribution of
normal data in pre-trained deep features for anomaly detection", ICPR 2020), or, when none is
given, the pooled vector z4 of GEOM's self-supervised network f (Golan & El-Yaniv, NeurIPS 2018)
on the untransformed image, trained on the in-distribution images without labels.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from oodscope.data.stream import ImageStream
from oodscope.detectors.base import Detector, Requires
from oodscope.inputs import as_images
from oodscope.training.core import batches
from oodscope.upstream.adapter import ModelAdapter
from oodscope.upstream.geom_net import GEOM_CHOICES, GEOM_DEFAULTS, GEOM_PRESETS, GeomNet


def adapter_features(adapter: ModelAdapter, x: torch.Tensor | ImageStream) -> Iterator[torch.Tensor]:
    """The penultimate feature vectors (float32, on the CPU) a model of yours gives images ``x`` in
    [0, 1] (or a stream of batches), a batch at a time."""
    with torch.no_grad():
        for chunk in (as_images(b, "training images") for b in x) if isinstance(x, ImageStream) else [x]:
            for idx in batches(chunk.shape[0], int(adapter.settings["batch_size"])):
                yield adapter.taps(chunk[idx])[adapter.penultimate].float().flatten(1).cpu()


class FeatureDetector(Detector):
    """Subclasses implement ``_fit`` and ``_score`` on :meth:`features`."""

    requires = Requires(upstream=GeomNet, user_models=True)
    defaults = GEOM_DEFAULTS
    choices = GEOM_CHOICES
    presets = GEOM_PRESETS

    streams = True  # with a model of yours, fitting reads an ImageStream / DataLoader batch by batch

    def features(self, x: torch.Tensor | ImageStream) -> Iterator[torch.Tensor]:
        """The feature vectors (float32, on the CPU) of images ``x`` in [0, 1] (or of a stream of
        batches), a batch at a time."""
        up = self.upstream
        if isinstance(up, ModelAdapter):
            yield from adapter_features(up, x)
            return
        with torch.no_grad():
            up.net.eval()
            for idx in batches(x.shape[0], 4 * int(self.config["batch_size"])):
                xb = up.normalize(x[idx]).to(up.device)
                yield up.taps(up.transforms.one(xb, 0), need=("z4",))["z4"].float().flatten(1).cpu()
