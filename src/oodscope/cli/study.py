"""``oodscope study``: one of the source works' experiments, with its figures (see :mod:`oodscope.studies`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from oodscope.cli.common import apply_threads, threads_option
from oodscope.bench.options import parse_int_list
from oodscope.studies import STUDIES, StudyOptions, run_study


@click.command()
@click.argument("name", type=click.Choice(STUDIES))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory (figures, CSV, note).")
@click.option("--epochs", type=int, default=None, help="Training epochs [the three ae studies: 10; alocc-epochs: 10; "
              "regression-uncertainty: 2000 full-batch steps].")
@click.option("--seeds", default="0", show_default=True, help="Seeds, e.g. 0 or 0,1,2 (alocc-epochs: one curve each).")
@click.option("--n-train", type=int, default=None,
              help="Training images drawn from the split [the three ae studies: 20000 of MNIST's 60000; alocc-epochs: all of '1'; "
                   "regression-uncertainty: 1000 toy points].")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Data root (default: $OODSCOPE_DATA or ~/.cache/oodscope).")
@click.option("--download/--no-download", default=True, show_default=True, help="Download missing data files.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show training progress on stderr.")
@threads_option()
def study(name: str, out: str, seeds: str, threads: int | None, **opts: Any) -> None:
    """Run the study NAME and write its figures, numbers (CSV) and note (Markdown) to OUT.

    \b
    ae-latent           Hirokawa, figs. 4-5: 2-D / 3-D latents of the AE and VAE, by digit
    ae-errors           Hirokawa, fig. 7: reconstruction errors, training vs unseen images
    ae-reconstructions  Hirokawa, figs. 6, 8: inputs and reconstructions, 64-d and 3-d latents
    alocc-epochs        ALOCC blog post: ALOCC on '1' vs '0', accuracy and F1 over epochs
    regression-uncertainty
                        Takahashi, figs. 8.1-8.2: aleatoric and epistemic sd of a deep
                        ensemble on y = sin x + noise, inside and outside the training range

    \b
    Sources: Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional
    variational autoencoder" (n.d.); an anonymous blog post implementing ALOCC in Chainer
    on MNIST (n.d.); Takahashi, "Deep learning: reliability of inference" (University of
    Aizu lecture notes, n.d.).
    """
    apply_threads(threads)
    options = StudyOptions(out=out, seeds=parse_int_list(seeds, "--seeds"),
                           command=["oodscope", *sys.argv[1:]] if sys.argv else None, **opts)
    for path in run_study(name, options):
        click.echo(f"wrote: {path}")
