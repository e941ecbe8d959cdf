"""Generated outlier sources for the one-class protocol's stress tests: 28×28 grey images, white
on black like MNIST, made deterministically from a seed (no download, nothing on disk).

* ``digits-28``: scikit-learn's bundled 8×8 digits, upscaled (bilinear) to 20×20 and centred in a
  28×28 frame, the way MNIST centres its digits in a 20×20 box;
* ``synthetic-noise``: classes ``uniform`` (i.i.d. uniform pixels), ``smooth`` (uniform noise
  blurred with a Gaussian of σ = 1.5 px, rescaled to the full range) and ``sparse`` (5 % of the
  pixels white);
* ``synthetic-blobs``: classes ``1 blob`` … ``3 blobs``: isotropic Gaussian blobs (σ 1.5–4 px,
  centres within the central 16×16), the brightest pixel white;
* ``synthetic-strokes``: classes ``1 stroke`` … ``3 strokes``: quadratic Bézier curves 2–3 px
  wide drawn with Pillow within the central 20×20 box, pen-like but no character.

The train and test splits come from different seeds; a split holds :data:`PER_CLASS` images of
each class (a third of that for test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from oodscope.data.digits import read_digits
from oodscope.data.imageset import ImageSet
from oodscope.errors import DataError

SIZE = 28
PER_CLASS = 2000
KINDS: dict[str, list[str]] = {
    "noise": ["uniform", "smooth", "sparse"],
    "blobs": ["1 blob", "2 blobs", "3 blobs"],
    "strokes": ["1 stroke", "2 strokes", "3 strokes"],
}
_SEEDS = {"train": 0, "test": 1}


def _split_size(split: str) -> int:
    if split not in _SEEDS:
        raise DataError(f"synthetic: unknown split {split!r}; use 'train' or 'test'")
    return PER_CLASS if split == "train" else PER_CLASS // 3


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, H, W) with zero padding."""
    r = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 2, x)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, x)


def _noise(cls: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if cls == 0:
        return rng.uniform(0, 1, (n, SIZE, SIZE))
    if cls == 1:
        x = _blur(rng.uniform(0, 1, (n, SIZE, SIZE)), 1.5)
        lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
        return (x - lo) / np.maximum(hi - lo, 1e-12)
    return (rng.uniform(0, 1, (n, SIZE, SIZE)) < 0.05).astype(np.float64)


def _blobs(cls: int, n: int, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    x = np.zeros((n, SIZE, SIZE))
    for _ in range(cls + 1):
        cr, cc = rng.uniform(6, 22, (2, n, 1, 1))
        sigma = rng.uniform(1.5, 4.0, (n, 1, 1))
        x = np.maximum(x, np.exp(-((rows - cr) ** 2 + (cols - cc) ** 2) / (2 * sigma ** 2)))
    return x / x.max(axis=(1, 2), keepdims=True)


def _strokes(cls: int, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((n, SIZE, SIZE))
    t = np.linspace(0, 1, 24)[:, None]
    for i in range(n):
        img = Image.new("L", (SIZE, SIZE), 0)
        draw = ImageDraw.Draw(img)
        for _ in range(cls + 1):
            p0, p1, p2 = rng.uniform(4, 24, (3, 2))
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
            draw.line([tuple(p) for p in curve], fill=255, width=int(rng.integers(2, 4)), joint="curve")
        out[i] = np.asarray(img, dtype=np.float64) / 255.0
    return out


_MAKERS = {"noise": _noise, "blobs": _blobs, "strokes": _strokes}


def read_synthetic(kind: str, split: str) -> ImageSet:
    """The ``split`` of the generated set ``kind`` (a key of :data:`KINDS`)."""
    if kind not in KINDS:
        raise DataError(f"synthetic: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    n = _split_size(split)
    rng = np.random.default_rng([_SEEDS[split], list(KINDS).index(kind)])
    parts = [_MAKERS[kind](c, n, rng) for c in range(len(KINDS[kind]))]
    images = np.clip(np.round(np.concatenate(parts) * 255), 0, 255).astype(np.uint8)[:, None]
    labels = np.repeat(np.arange(len(parts), dtype=np.int64), n)
    return ImageSet(images, labels, list(KINDS[kind]), f"synthetic-{kind}")


def generate(kind: str, n: int, seed: int) -> np.ndarray:
    """``n`` uint8 images ``(n, 1, 28, 28)`` of the generated set ``kind``, its classes taking turns,
    from ``seed`` (a stream apart from the train and test splits): generic outliers for a detector.

    Raises:
        DataError: an unknown ``kind`` or ``n`` < 0.
    """
    if kind not in KINDS:
        raise DataError(f"synthetic: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if n < 0:
        raise DataError(f"synthetic: cannot generate {n} images")
    rng = np.random.default_rng([2, list(KINDS).index(kind), int(seed)])
    k = len(KINDS[kind])
    parts = [_MAKERS[kind](c, len(range(c, n, k)), rng) for c in range(k)]
    images = np.concatenate(parts) if n else np.zeros((0, SIZE, SIZE))
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)[:, None]


def read_digits28(directory: Path | None, split: str) -> ImageSet:
    """scikit-learn's digits upscaled to MNIST's frame (``directory`` is unused)."""
    small = read_digits(directory, split)
    box = SIZE - 8
    images = np.zeros((len(small.images), 1, SIZE, SIZE), dtype=np.uint8)
    for i, im in enumerate(small.images[:, 0]):
        images[i, 0, 4:4 + box, 4:4 + box] = np.asarray(Image.fromarray(im).resize((box, box), Image.BILINEAR))
    return ImageSet(images, small.labels.copy(), list(small.classes), "digits-28")
