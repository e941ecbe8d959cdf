"""``oodscope score``: score image files with a saved model and write a CSV of verdicts
(:func:`oodscope.pipeline.score_paths`)."""

from __future__ import annotations

import click
import numpy as np

from oodscope.atomic import write_text_atomic
from oodscope.cli.common import apply_threads, threads_option
from oodscope.detectors import load
from oodscope.pipeline import score_paths, scores_csv


@click.command()
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the CSV here (atomically) instead of stdout.")
@threads_option()
def score(model: str, images: tuple[str, ...], out: str | None, threads: int | None) -> None:
    """Score images with a saved model.

    IMAGES are files and/or folders. Writes CSV with columns file,score,verdict
    (verdict ood if score > the model's threshold, else in).
    """
    apply_threads(threads)
    detector = load(model)
    files, scores = score_paths(detector, images)
    if detector.threshold is None:
        click.echo("note: the model has no threshold; the verdict column is left empty", err=True)
    text = scores_csv(files, scores, detector.threshold)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        n_ood = int(np.sum(scores > detector.threshold)) if detector.threshold is not None else 0
        click.echo(f"scored {len(files)} images ({n_ood} ood); wrote {out}", err=True)
