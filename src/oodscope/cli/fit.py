"""``oodscope fit``: train a detector on an image folder and set its rejection threshold
(:func:`oodscope.pipeline.fit_with_threshold`)."""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from oodscope.bench.options import parse_settings, parse_size
from oodscope.bench.paper.methods import OURS
from oodscope.bench.user_model import BenchModel
from oodscope.cli.common import apply_threads, decision_options, device_option, model_options, set_option, threads_option
from oodscope.data import ImageStream, load_folder
from oodscope.detectors import detector_class, registry
from oodscope.detectors.base import PRESET_NAMES
from oodscope.errors import InputError
from oodscope.metrics.conformal import check_level
from oodscope.pipeline import fit_with_threshold
from oodscope.pipeline.decisions import record_rule, rule_from_options
from oodscope.pipeline.fitting import holdout_split
from oodscope.training import distributed


def _channels(value: int | None) -> int | None:
    if value is not None and value not in (1, 3):
        raise InputError(f"--channels must be 1 (gray) or 3 (RGB), got {value}")
    return value


@click.command()
@click.option("--method", type=click.Choice(list(registry())), default=OURS, show_default=True, help="Detector method.")
@click.option("--train", "train_dir", required=True, type=click.Path(),
              help="Folder of in-distribution images (flat, or one sub-folder per class: needed by methods that use labels).")
@click.option("--outliers", "outlier_dir", type=click.Path(), default=None, help="Folder of known outlier images (needed by outlier-exposure methods).")
@click.option("--out", required=True, type=click.Path(), help="Directory to save the model to.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="cpu", show_default=True, help="Detector settings preset.")
@click.option("--accept", type=float, default=None,
              help="Threshold rule: fraction of held-out in-distribution images it accepts [0.95 unless --fpr].")
@click.option("--fpr", type=float, default=None,
              help="Threshold rule instead: at most this fraction of the --val-outliers images is accepted as in-distribution.")
@click.option("--val-outliers", "val_dir", type=click.Path(), default=None,
              help="Folder of known outliers, not trained on, for --fpr.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the detector and of the held-out split.")
@click.option("--size", default=None, metavar="HxW", help="Resize training images to HEIGHTxWIDTH (needed if their sizes differ).")
@click.option("--channels", type=int, default=None, help="Force 1 (gray) or 3 (RGB) channels.")
@model_options("the detector reads it instead of training its own (post-hoc detectors, deep-knn, gaussian, the "
               "PyOD peers on its features); saved with the detector. A detector that fits on a stream then reads "
               "--train batch by batch.")
@decision_options("recorded with the model: oodscope score and serve apply it")
@device_option()
@set_option()
@threads_option()
def fit(method: str, train_dir: str, outlier_dir: str | None, out: str, preset: str, accept: float | None,
        fpr: float | None, val_dir: str | None, seed: int, size: str | None, channels: int | None, device: str | None,
        settings: tuple[str, ...], threads: int | None, alpha: float | None, fdr: float | None, fdr_rule: str,
        class_conditional: bool, **model_opts: Any) -> None:
    """Train a detector on an image folder and save it.

    10% of the training images (at least one) are held out to set the threshold that
    accepts the --accept fraction of in-distribution images; or, with --fpr and
    --val-outliers, the threshold that accepts at most that fraction of known outliers.
    `oodscope threshold` changes it later without refitting. Under torchrun
    (`torchrun --nproc-per-node N -m oodscope fit ...`) GEOM's f and classifiers train with DDP
    and rank 0 saves the model.
    """
    apply_threads(threads)
    accept, fpr = check_rule(accept, fpr, val_dir)
    decision = rule_from_options(alpha, fdr, fdr_rule, class_conditional)
    overrides = parse_settings(settings, [method])
    spec = BenchModel.from_options(model_opts)
    model = None if spec is None else spec.adapter()
    if model is not None and detector_class(method).streams:  # read batch by batch, never all in memory
        train: Any = ImageStream.from_folder(train_dir, size=parse_size(size), channels=_channels(channels))
        first = np.asarray(train.first())
    else:
        train = load_folder(train_dir, size=parse_size(size), channels=_channels(channels))
        first = train.images
    shape, c = tuple(int(s) for s in first.shape[2:]), int(first.shape[1])
    outliers = None
    if outlier_dir is not None:
        outliers = load_folder(outlier_dir, size=shape, channels=c)
    val = None if val_dir is None else load_folder(val_dir, size=shape, channels=c)
    if decision is not None and decision.uses_p_values:  # refuse a level the held-out images cannot reach before training
        n = train.n_files if isinstance(train, ImageStream) else len(train)
        check_level(len(holdout_split(n, seed)[1]), float(decision.level), "the level")
    report = fit_with_threshold(method, train, outliers, accept, seed, preset, overrides, device, fpr, val, model)
    if not distributed.is_main():  # under torchrun every rank trains; rank 0 alone saves and reports
        return
    if decision is not None:
        record_rule(report.detector, decision)
    path = report.detector.save(out)
    n_out = 0 if outliers is None else len(outliers)
    click.echo(
        f"fitted {method} on {report.n_fit} images ({shape[0]}x{shape[1]}, {c} channel(s)), "
        f"{n_out} outliers; {describe_rule(report.rule)}; saved {path}"
    )
    if decision is not None:
        click.echo(f"decision rule: {decision.kind} at {decision.level:g}: {decision.guarantee()}")


def check_rule(accept: float | None, fpr: float | None, val_dir: str | None) -> tuple[float | None, float | None]:
    """The threshold rule of --accept / --fpr / --val-outliers (--accept 0.95 when none is given).

    Raises:
        InputError: both rules, a value out of range, or --fpr without --val-outliers (or the reverse).
    """
    if accept is not None and fpr is not None:
        raise InputError("give --accept or --fpr, not both")
    if fpr is None and val_dir is not None:
        raise InputError("--val-outliers is for --fpr; give --fpr too")
    if fpr is not None:
        if val_dir is None:
            raise InputError("--fpr needs --val-outliers, a folder of known outliers")
        if not 0.0 <= fpr < 1.0:
            raise InputError(f"--fpr must be in [0, 1), got {fpr}")
        return None, fpr
    accept = 0.95 if accept is None else accept
    if not 0.0 < accept <= 1.0:
        raise InputError(f"--accept must be in (0, 1], got {accept}")
    return accept, None


def describe_rule(rule: dict) -> str:
    """One line: the threshold and what share of held-out images (and outliers) it accepts."""
    held = rule["held_out"]
    text = f"threshold {rule['threshold']:.6g} accepts {held['accepted']:.1%} of {held['n']} held-out images"
    if "outliers" in rule:
        text += f" and {rule['outliers']['accepted']:.1%} of {rule['outliers']['n']} validation outliers (--fpr {rule['target']:g})"
    return text


