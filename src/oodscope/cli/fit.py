"""``oodscope fit``: train a detector on an image folder and set its rejection threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from oodscope.bench.presets import PRESETS, preset_settings
from oodscope.cli.common import apply_threads, device_option, set_option, threads_option
from oodscope.cli.parsing import parse_settings, parse_size
from oodscope.data import ImageSet, load_folder
from oodscope.detectors import DETECTORS, Detector, create
from oodscope.errors import InputError
from oodscope.metrics import threshold_at_acceptance

HOLDOUT_FRACTION = 0.1


@dataclass
class FitReport:
    """What :func:`fit_with_threshold` did."""

    detector: Detector
    n_fit: int
    n_holdout: int
    threshold: float


def holdout_split(n: int, seed: int, fraction: float = HOLDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Random (fit, held-out) index arrays: ``max(1, round(fraction * n))`` held out.

    Raises:
        InputError: fewer than 2 images (nothing would be left to fit or to calibrate on).
    """
    if n < 2:
        raise InputError(f"need at least 2 training images (1 is held out to set the threshold), got {n}")
    n_hold = max(1, int(round(fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def fit_with_threshold(method: str, settings: dict[str, Any], train: ImageSet, outliers: ImageSet | None,
                       accept: float, seed: int) -> FitReport:
    """Fit on 90 % of ``train`` and set the threshold so that a fraction ``accept`` of the
    held-out 10 % (at least one image) scores at or below it (is accepted as in-distribution)."""
    fit_idx, hold_idx = holdout_split(len(train), seed)
    det = create(method, **settings)
    det.fit(train.subset(fit_idx), outliers)
    threshold = threshold_at_acceptance(det.score(train.subset(hold_idx)), accept)
    det.set_threshold(threshold)
    return FitReport(det, len(fit_idx), len(hold_idx), threshold)


def _channels(value: int | None) -> int | None:
    if value is not None and value not in (1, 3):
        raise InputError(f"--channels must be 1 (gray) or 3 (RGB), got {value}")
    return value


@click.command()
@click.option("--method", type=click.Choice(list(DETECTORS)), default="layers", show_default=True, help="Detector method.")
@click.option("--train", "train_dir", required=True, type=click.Path(), help="Folder of in-distribution images (flat or one sub-folder per class).")
@click.option("--outliers", "outlier_dir", type=click.Path(), default=None, help="Folder of known outlier images (needed by outlier-exposure methods).")
@click.option("--out", required=True, type=click.Path(), help="Directory to save the model to.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cpu", show_default=True, help="Detector settings preset.")
@click.option("--accept", type=float, default=0.95, show_default=True, help="Fraction of held-out in-distribution images the threshold accepts.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the detector and of the held-out split.")
@click.option("--size", default=None, metavar="HxW", help="Resize training images to HEIGHTxWIDTH (needed if their sizes differ).")
@click.option("--channels", type=int, default=None, help="Force 1 (gray) or 3 (RGB) channels.")
@device_option()
@set_option()
@threads_option()
def fit(method: str, train_dir: str, outlier_dir: str | None, out: str, preset: str, accept: float, seed: int,
        size: str | None, channels: int | None, device: str | None, settings: tuple[str, ...], threads: int | None) -> None:
    """Train a detector on an image folder and save it.

    10% of the training images (at least one) are held out to set the threshold that
    accepts the --accept fraction of in-distribution images.
    """
    apply_threads(threads)
    if not 0.0 < accept <= 1.0:
        raise InputError(f"--accept must be in (0, 1], got {accept}")
    train = load_folder(train_dir, size=parse_size(size), channels=_channels(channels))
    shape = tuple(int(s) for s in train.images.shape[2:])
    outliers = None
    if outlier_dir is not None:
        outliers = load_folder(outlier_dir, size=shape, channels=int(train.images.shape[1]))
    overrides = parse_settings(settings)
    stray = sorted(set(overrides) - set(DETECTORS[method].defaults))
    if stray:
        raise InputError(f"{method}: unknown settings {stray}; known: {sorted(DETECTORS[method].defaults)}")
    config = preset_settings(preset, method, device, overrides)
    if "seed" in DETECTORS[method].defaults:
        config["seed"] = seed
    report = fit_with_threshold(method, config, train, outliers, accept, seed)
    path = report.detector.save(out)
    n_out = 0 if outliers is None else len(outliers)
    click.echo(
        f"fitted {method} on {report.n_fit} images ({shape[0]}x{shape[1]}, {train.images.shape[1]} channel(s)), "
        f"{n_out} outliers; threshold {report.threshold:.6g} accepts {accept:.0%} of {report.n_holdout} held-out images; "
        f"saved {path}"
    )
