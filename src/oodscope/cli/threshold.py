"""``oodscope threshold``: choose a saved model's threshold again, without refitting
(:func:`oodscope.pipeline.thresholds.rethreshold`)."""

from __future__ import annotations

import click

from oodscope.cli.common import apply_threads, threads_option
from oodscope.cli.fit import check_rule, describe_rule
from oodscope.data import load_folder
from oodscope.detectors import load
from oodscope.pipeline.files import model_geometry
from oodscope.pipeline.thresholds import rethreshold


@click.command()
@click.argument("model", type=click.Path())
@click.option("--accept", type=float, default=None, help="Fraction of the held-out in-distribution images to accept.")
@click.option("--fpr", type=float, default=None, help="At most this fraction of the --val-outliers images is accepted.")
@click.option("--val-outliers", "val_dir", type=click.Path(), default=None, help="Folder of known outliers for --fpr.")
@threads_option()
def threshold(model: str, accept: float | None, fpr: float | None, val_dir: str | None, threads: int | None) -> None:
    """Set MODEL's rejection threshold again and save it in place (atomically).

    Uses the held-out in-distribution scores saved by `oodscope fit`; with --fpr, the
    known outliers of --val-outliers are scored with the model.
    """
    apply_threads(threads)
    if accept is None and fpr is None:
        raise click.UsageError("give --accept or --fpr")
    accept, fpr = check_rule(accept, fpr, val_dir)
    detector = load(model)
    outlier_scores = None
    if val_dir is not None:
        size, channels = model_geometry(detector)
        outlier_scores = detector.score(load_folder(val_dir, size=size, channels=channels))
    old = detector.threshold
    rule = rethreshold(detector, accept, fpr, outlier_scores)
    detector.save(model)
    click.echo(f"{model}: {describe_rule(rule)} (was {old if old is None else format(old, '.6g')})")
