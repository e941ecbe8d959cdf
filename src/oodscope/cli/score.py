"""``oodscope score``: score image files with a saved model, in bounded batches, into a CSV of
scores, conformal p-values and verdicts that an interrupted run resumes
(:func:`oodscope.pipeline.stream_scores`; decision rules: :mod:`oodscope.pipeline.decisions`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from oodscope.cli.common import apply_threads, decision_options, engine_option, threads_option
from oodscope.export.loading import identity, load_scorer, with_classes
from oodscope.pipeline import collect_files
from oodscope.pipeline.decisions import Decider, model_rule, rule_from_options
from oodscope.pipeline.streaming import (
    BATCH,
    bh_verdicts,
    decider_for,
    decision_path,
    deferred,
    error_rows,
    format_rows,
    iter_rows,
    reader_for,
    stream_scores,
)
from oodscope.progress import message, progress


@click.command()
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the CSV here, batch by batch; rerun with the same --out to resume. Default: stdout.")
@click.option("--batch", type=click.IntRange(min=1), default=BATCH, show_default=True, help="Images decoded and scored at a time.")
@click.option("--strict", is_flag=True, help="Stop at the first file that cannot be decoded (default: list it and go on).")
@click.option("--progress/--no-progress", "show_progress", default=True, show_default=True, help="Show progress on stderr (with --out).")
@decision_options("the images of this run; default: the rule saved with the model, else its threshold")
@engine_option()
@threads_option()
def score(model: str, images: tuple[str, ...], out: str | None, batch: int, strict: bool, show_progress: bool,
          alpha: float | None, fdr: float | None, fdr_rule: str, class_conditional: bool,
          engine: str, threads: int | None) -> None:
    """Score images with a saved model (a model directory, or an exported .onnx file).

    IMAGES are files and/or folders (searched recursively). Writes CSV with columns
    file,score,p_value,verdict,error. p_value is the image's conformal p-value against the
    model's calibration scores (the held-out images of `oodscope fit`; empty if it has none).
    verdict is ood or in by the decision rule: --alpha, --fdr, the rule saved with the model,
    or else score > the model's threshold. With --fdr and the bh rule the verdicts are written
    once every image is scored; with an online rule (--fdr-rule lond or lord++) its state is
    saved in OUT.decision.json, so a resumed run continues it. A file that cannot be decoded
    gets verdict error and the reason, and the others are scored (--strict stops instead).
    Memory stays bounded whatever the number of files.
    """
    apply_threads(threads)
    rule = rule_from_options(alpha, fdr, fdr_rule, class_conditional)
    detector = load_scorer(model, threads, engine)
    if (rule or model_rule(detector)).class_conditional:
        detector = with_classes(model, detector, threads, engine)
    read = reader_for(detector)
    files = collect_files(images)
    decider = decider_for(detector, rule)
    if decider.rule.kind == "threshold" and detector.threshold is None:
        message("note: the model has no threshold; the verdict column is left empty")
    if out is None:
        _to_stdout(detector, files, read, batch, strict, decider)
        return
    bar, shown = progress(len(files), "scoring", enabled=show_progress, unit="img"), [0]

    def advance(done: int, total: int) -> None:
        bar.update(done - shown[0])
        shown[0] = done

    try:
        report = stream_scores(detector, files, out, read, batch, strict, progress=advance, rule=decider.rule,
                               model=identity(model, detector))
    finally:
        bar.close()
    _report_errors(report.errors)
    resumed = f" ({report.resumed} already in the CSV)" if report.resumed else ""
    click.echo(f"scored {len(files) - len(report.errors)} images ({report.n_ood} ood by {decider.rule.kind}){resumed}; "
               f"wrote {out} (rule: {decision_path(out)})", err=True)


def _to_stdout(detector: Any, files: list[Path], read: Callable[[Path], np.ndarray], batch: int, strict: bool,
               decider: Decider) -> None:
    """The CSV on stdout: batch by batch, or, for Benjamini-Hochberg over the run, once at the end."""
    sys.stdout.write(format_rows([], header=True))
    errors: list[tuple[str, str]] = []
    held: list[list[str]] = []
    for rows in iter_rows(detector, files, read, batch, strict, decider=decider):
        errors += error_rows(rows)
        if deferred(decider):
            held += rows
            continue
        sys.stdout.write(format_rows(rows))
        sys.stdout.flush()
    if deferred(decider):
        sys.stdout.write(format_rows(bh_verdicts(held, float(decider.rule.level))))
    _report_errors(errors)


def _report_errors(errors: list[tuple[str, str]]) -> None:
    if not errors:
        return
    message(f"skipped {len(errors)} file(s) that cannot be decoded (verdict 'error' in the CSV; --strict stops instead):")
    for _, reason in errors[:20]:
        message(f"  {reason}")
    if len(errors) > 20:
        message(f"  ... and {len(errors) - 20} more")
