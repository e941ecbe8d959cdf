"""``oodscope threshold``: choose a saved model's threshold again, calibrate it on a folder of
in-distribution images, or record its decision rule, without refitting
(:func:`oodscope.pipeline.thresholds.rethreshold`, :mod:`oodscope.pipeline.decisions`)."""

from __future__ import annotations

import click

from oodscope.cli.common import apply_threads, decision_options, threads_option
from oodscope.cli.fit import check_rule, describe_rule
from oodscope.data import load_folder
from oodscope.detectors import load
from oodscope.pipeline.decisions import calibrate, record_rule, rule_from_options
from oodscope.pipeline.files import model_geometry
from oodscope.pipeline.thresholds import rethreshold


@click.command()
@click.argument("model", type=click.Path())
@click.option("--accept", type=float, default=None, help="Fraction of the held-out in-distribution images to accept.")
@click.option("--fpr", type=float, default=None, help="At most this fraction of the --val-outliers images is accepted.")
@click.option("--val-outliers", "val_dir", type=click.Path(), default=None, help="Folder of known outliers for --fpr.")
@click.option("--calibration", "cal_dir", type=click.Path(), default=None,
              help="Folder of in-distribution images the model was not fitted on: their scores replace the held-out "
                   "images' as the calibration of p-values (the threshold is unchanged unless --accept / --fpr).")
@decision_options("recorded with the model: oodscope score and serve apply it")
@threads_option()
def threshold(model: str, accept: float | None, fpr: float | None, val_dir: str | None, cal_dir: str | None,
              alpha: float | None, fdr: float | None, fdr_rule: str, class_conditional: bool, threads: int | None) -> None:
    """Set MODEL's rejection threshold again, its calibration, or its decision rule, and save it in
    place (atomically).

    --accept / --fpr use the held-out in-distribution scores saved by `oodscope fit`; with --fpr,
    the known outliers of --val-outliers are scored with the model. --calibration scores a folder
    of in-distribution images for the model's p-values. --alpha / --fdr record the decision rule
    that `oodscope score` and `oodscope serve` apply by default.
    """
    apply_threads(threads)
    decision = rule_from_options(alpha, fdr, fdr_rule, class_conditional)
    if accept is None and fpr is None and cal_dir is None and decision is None:
        raise click.UsageError("give --accept or --fpr (threshold), --calibration, or --alpha / --fdr (decision rule)")
    detector = load(model)
    lines = []
    if cal_dir is not None:
        size, channels = model_geometry(detector)
        summary = calibrate(detector, load_folder(cal_dir, size=size, channels=channels), source=f"folder {cal_dir}")
        lines.append(f"calibrated on {summary['n']} images of {cal_dir}")
    if accept is not None or fpr is not None or val_dir is not None:
        accept, fpr = check_rule(accept, fpr, val_dir)
        outlier_scores = None
        if val_dir is not None:
            size, channels = model_geometry(detector)
            outlier_scores = detector.score(load_folder(val_dir, size=size, channels=channels))
        old = detector.threshold
        rule = rethreshold(detector, accept, fpr, outlier_scores)
        lines.append(f"{describe_rule(rule)} (was {old if old is None else format(old, '.6g')})")
    if decision is not None:
        record_rule(detector, decision)
        lines.append(f"decision rule {decision.kind} at {decision.level:g}: {decision.guarantee()}")
    detector.save(model)
    click.echo(f"{model}: " + "; ".join(lines))
