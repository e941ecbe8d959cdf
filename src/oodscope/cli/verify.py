"""``oodscope verify``: certified accuracy of a saved classifier-based model (:mod:`oodscope.verify`)
on a labelled data set or a folder of class sub-folders: the share of images whose class is
correct and provably the same on the whole L∞ ball of radius ε (inside [0, 1]), for the model as
it scores, in float32 (the bounds include the network's float32 rounding). A model that scores in
bfloat16 is refused with a line saying how to get a float32 one."""

from __future__ import annotations

import json
from typing import Any

import click
import torch

from oodscope.atomic import write_text_atomic
from oodscope.cli.common import apply_threads, threads_option
from oodscope.cli.labelled import classifier_of, labelled_images
from oodscope.bench.options import parse_radii
from oodscope.progress import progress as progress_bar
from oodscope.verify import METHODS, CertResult, as_layers, certify, require_float32

CHUNK = 10  # images certified per call (for the progress bar)


def certify_in_chunks(model: Any, x: torch.Tensor, labels: torch.Tensor, eps: float, method: str,
                      show: bool) -> CertResult:
    """:func:`oodscope.verify.certify` of ``x`` a chunk at a time, with a progress bar."""
    bar = progress_bar(x.shape[0], f"verify: {method} eps {eps:g}", show)
    parts = []
    for start in range(0, x.shape[0], CHUNK):
        parts.append(certify(model, x[start:start + CHUNK], eps, method, label=labels[start:start + CHUNK]))
        bar.update(parts[-1].certified.numel())
    bar.close()
    return CertResult(method, float(eps), *(torch.cat([getattr(p, k) for p in parts])
                                            for k in ("predicted", "certified", "margin", "correct", "seconds")))


@click.command()
@click.argument("model", type=click.Path())
@click.option("--eps", "eps_values", multiple=True, default=("0.1",), show_default=True,
              help="L∞ radius (pixels in [0, 1]); repeat the option or give a comma list for several.")
@click.option("--method", type=click.Choice(list(METHODS)), default="deeppoly", show_default=True,
              help="deeppoly (back-substituted linear bounds, tighter) or interval (interval bound propagation).")
@click.option("--dataset", default="mnist", show_default=True, help="Labelled data set whose test split is certified.")
@click.option("--images", "folder", type=click.Path(), default=None,
              help="Instead of --dataset: a folder with one sub-folder per class, in the model's class order.")
@click.option("--n", "n_images", type=click.IntRange(min=0), default=100, show_default=True,
              help="Certify a random subset of N images (0 = all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subset.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Data root (default: $OODSCOPE_DATA).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON here.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@threads_option()
def verify(model: str, eps_values: tuple[str, ...], method: str, dataset: str, folder: str | None, n_images: int,
           seed: int, data_root: str | None, out: str | None, progress: bool, threads: int | None) -> None:
    """Certified accuracy of the classifier of a saved model (e.g. ``oodscope fit --method msp``):
    the share of images classified correctly whose class is proven to stay the same for every
    image within L∞ distance ε (DeepPoly or interval bounds, including the float32 rounding of
    the network; LeNet classifiers scoring in float32)."""
    apply_threads(threads)
    epsilons = parse_radii(eps_values)
    det, clf = classifier_of(model, "verify")
    require_float32(clf)  # the certificates cover float32 scoring only
    require_float32(det)  # (the detector's own setting, should it differ from its network's)
    x, y = labelled_images(clf, folder, dataset, data_root, n_images, seed, "images to verify")
    ops = as_layers(clf)  # refuses networks the verifiers do not accept before any work
    rows, clean = [], 0.0
    for eps in epsilons:
        r = certify_in_chunks(ops, x, y, eps, method, progress)
        clean = round(100 * float(r.correct.double().mean()), 4)  # the same at every radius
        rows.append({"eps": eps, "certified_accuracy": round(100 * r.share, 4),
                     "seconds_per_certificate": r.seconds_per_certificate})
        click.echo(f"{x.shape[0]} images: clean accuracy {clean:.2f} %, certified ({method}) at eps {eps:g}: "
                   f"{100 * r.share:.2f} % ({r.seconds_per_certificate:.3g} s per certificate)")
    record = {"model": model, "method": det.method, "verifier": method, "n": int(x.shape[0]), "clean_accuracy": clean,
              "results": rows}
    if out is not None:
        write_text_atomic(out, json.dumps(record, indent=2) + "\n")
        click.echo(f"wrote {out}", err=True)
