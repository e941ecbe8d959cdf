"""``oodscope score``: score image files with a saved model, in bounded batches, into a CSV of
verdicts that an interrupted run resumes (:func:`oodscope.pipeline.stream_scores`)."""

from __future__ import annotations

import sys

import click

from oodscope.cli.common import apply_threads, engine_option, threads_option
from oodscope.export.loading import load_scorer
from oodscope.pipeline import collect_files
from oodscope.pipeline.streaming import BATCH, error_rows, format_rows, iter_rows, reader_for, stream_scores
from oodscope.progress import message, progress


@click.command()
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the CSV here, batch by batch; rerun with the same --out to resume. Default: stdout.")
@click.option("--batch", type=click.IntRange(min=1), default=BATCH, show_default=True, help="Images decoded and scored at a time.")
@click.option("--strict", is_flag=True, help="Stop at the first file that cannot be decoded (default: list it and go on).")
@click.option("--progress/--no-progress", "show_progress", default=True, show_default=True, help="Show progress on stderr (with --out).")
@engine_option()
@threads_option()
def score(model: str, images: tuple[str, ...], out: str | None, batch: int, strict: bool, show_progress: bool,
          engine: str, threads: int | None) -> None:
    """Score images with a saved model (a model directory, or an exported .onnx file).

    IMAGES are files and/or folders (searched recursively). Writes CSV with columns
    file,score,verdict,error: verdict is ood if score > the model's threshold, else in;
    a file that cannot be decoded gets verdict error and the reason, and the others are
    scored (--strict stops instead). Memory stays bounded whatever the number of files.
    """
    apply_threads(threads)
    detector = load_scorer(model, threads, engine)
    read = reader_for(detector)
    files = collect_files(images)
    if detector.threshold is None:
        message("note: the model has no threshold; the verdict column is left empty")
    if out is None:
        sys.stdout.write(format_rows([], header=True))
        errors = []
        for rows in iter_rows(detector, files, read, batch, strict):
            sys.stdout.write(format_rows(rows))
            sys.stdout.flush()
            errors += error_rows(rows)
        _report_errors(errors)
        return
    bar, shown = progress(len(files), "scoring", enabled=show_progress, unit="img"), [0]

    def advance(done: int, total: int) -> None:
        bar.update(done - shown[0])
        shown[0] = done

    try:
        report = stream_scores(detector, files, out, read, batch, strict, progress=advance)
    finally:
        bar.close()
    _report_errors(report.errors)
    resumed = f" ({report.resumed} already in the CSV)" if report.resumed else ""
    click.echo(f"scored {len(files) - len(report.errors)} images ({report.n_ood} ood){resumed}; wrote {out}", err=True)


def _report_errors(errors: list[tuple[str, str]]) -> None:
    if not errors:
        return
    message(f"skipped {len(errors)} file(s) that cannot be decoded (verdict 'error' in the CSV; --strict stops instead):")
    for _, reason in errors[:20]:
        message(f"  {reason}")
    if len(errors) > 20:
        message(f"  ... and {len(errors) - 20} more")

