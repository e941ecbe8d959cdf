"""``oodscope attack``: the accuracy of a saved classifier-based model under an adversarial attack
(:mod:`oodscope.adversarial`), on a labelled data set or a folder of class sub-folders."""

from __future__ import annotations

import json

import click

from oodscope.adversarial.robust import make_attack, robust_accuracy
from oodscope.atomic import write_text_atomic
from oodscope.cli.common import apply_threads, threads_option
from oodscope.cli.labelled import classifier_of, labelled_images


@click.command()
@click.argument("model", type=click.Path())
@click.option("--attack", "attack_name", type=click.Choice(["fgsm", "pgd"]), default="pgd", show_default=True)
@click.option("--eps", type=click.FloatRange(0, 1), default=0.3, show_default=True, help="L∞ radius (pixels in [0, 1]).")
@click.option("--steps", type=click.IntRange(min=1), default=40, show_default=True, help="PGD steps.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=None,
              help="PGD step size [2.5 × eps / steps].")
@click.option("--restarts", type=click.IntRange(min=1), default=1, show_default=True, help="PGD random restarts.")
@click.option("--dataset", default="mnist", show_default=True, help="Labelled data set whose test split is attacked.")
@click.option("--images", "folder", type=click.Path(), default=None,
              help="Instead of --dataset: a folder with one sub-folder per class, in the model's class order.")
@click.option("--n", "n_images", type=click.IntRange(min=0), default=0, help="Attack a random subset of N images (0 = all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subset and of the random starts.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Data root (default: $OODSCOPE_DATA).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON here.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@threads_option()
def attack(model: str, attack_name: str, eps: float, steps: int, alpha: float | None, restarts: int, dataset: str,
           folder: str | None, n_images: int, seed: int, data_root: str | None, out: str | None, progress: bool,
           threads: int | None) -> None:
    """Accuracy of the classifier of a saved model (e.g. ``oodscope fit --method msp``) on clean
    images and under FGSM or PGD (L∞, random start, projection and clipping to [0, 1])."""
    apply_threads(threads)
    det, clf = classifier_of(model, "attack")
    x, y = labelled_images(clf, folder, dataset, data_root, n_images, seed, "images to attack")
    fn = make_attack(attack_name, eps, steps, alpha, restarts, seed)
    result = robust_accuracy(clf.differentiable(amp=False), x, y, fn, show=progress,
                             what=f"{attack_name} eps {eps}")
    what = "FGSM" if attack_name == "fgsm" else f"PGD-{steps}" + (f" x {restarts} restarts" if restarts > 1 else "")
    record = {"model": model, "method": det.method, "attack": attack_name, "eps": eps,
              "steps": steps if attack_name == "pgd" else 1, "restarts": restarts, **result}
    click.echo(f"{result['n']} images: clean accuracy {result['clean_accuracy']:.2f} %, under {what} at eps {eps:g}: "
               f"{result['accuracy']:.2f} %")
    if out is not None:
        write_text_atomic(out, json.dumps(record, indent=2) + "\n")
        click.echo(f"wrote {out}", err=True)
