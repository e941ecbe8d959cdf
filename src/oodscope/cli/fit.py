"""``oodscope fit``: train a detector on an image folder and set its rejection threshold
(:func:`oodscope.pipeline.fit_with_threshold`)."""

from __future__ import annotations

import click

from oodscope.bench.paper.methods import OURS
from oodscope.cli.common import apply_threads, device_option, set_option, threads_option
from oodscope.bench.options import parse_settings, parse_size
from oodscope.data import load_folder
from oodscope.detectors import registry
from oodscope.training import distributed
from oodscope.detectors.base import PRESET_NAMES
from oodscope.errors import InputError
from oodscope.pipeline import fit_with_threshold
from oodscope.upstream.adapter import ModelAdapter, Preprocess


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
@click.option("--model", "model_file", type=click.Path(dir_okay=False), default=None,
              help="A classifier or backbone of yours, as a torch.export program (.pt2): the detector reads it "
                   "instead of training its own (post-hoc detectors, deep-knn, gaussian); saved with the detector.")
@click.option("--penultimate", default=None, help="With --model: the module whose output is the penultimate features (e.g. avgpool).")
@click.option("--head", default=None, help="With --model: the final linear layer (e.g. fc).")
@click.option("--taps", default=None, help="With --model: further modules to tap, comma-separated (e.g. layer3,layer4).")
@click.option("--input-size", default=None, metavar="HxW", help="With --model: the input size it takes (images are resized).")
@click.option("--input-channels", type=int, default=None, help="With --model: the channels it takes (1 or 3; grey and RGB are converted).")
@click.option("--input-mean", default=None, help="With --model: per-channel mean it normalises with, comma-separated.")
@click.option("--input-std", default=None, help="With --model: per-channel standard deviation, comma-separated.")
@device_option()
@set_option()
@threads_option()
def fit(method: str, train_dir: str, outlier_dir: str | None, out: str, preset: str, accept: float | None,
        fpr: float | None, val_dir: str | None, seed: int, size: str | None, channels: int | None, device: str | None,
        settings: tuple[str, ...], threads: int | None, model_file: str | None = None, penultimate: str | None = None,
        head: str | None = None, taps: str | None = None, input_size: str | None = None,
        input_channels: int | None = None, input_mean: str | None = None, input_std: str | None = None) -> None:
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
    overrides = parse_settings(settings, [method])
    train = load_folder(train_dir, size=parse_size(size), channels=_channels(channels))
    shape = tuple(int(s) for s in train.images.shape[2:])
    outliers = None
    if outlier_dir is not None:
        outliers = load_folder(outlier_dir, size=shape, channels=int(train.images.shape[1]))
    val = None if val_dir is None else load_folder(val_dir, size=shape, channels=int(train.images.shape[1]))
    model = None if model_file is None else user_model(model_file, penultimate, head, taps, input_size, input_channels,
                                                       input_mean, input_std)
    if model is None and any(v is not None for v in (penultimate, head, taps, input_size, input_channels, input_mean, input_std)):
        raise InputError("--penultimate, --head, --taps and --input-* describe a model of yours: give it with --model")
    report = fit_with_threshold(method, train, outliers, accept, seed, preset, overrides, device, fpr, val, model)
    if not distributed.is_main():  # under torchrun every rank trains; rank 0 alone saves and reports
        return
    path = report.detector.save(out)
    n_out = 0 if outliers is None else len(outliers)
    click.echo(
        f"fitted {method} on {report.n_fit} images ({shape[0]}x{shape[1]}, {train.images.shape[1]} channel(s)), "
        f"{n_out} outliers; {describe_rule(report.rule)}; saved {path}"
    )


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


def user_model(path: str, penultimate: str | None, head: str | None, taps: str | None, size: str | None,
               channels: int | None, mean: str | None, std: str | None) -> ModelAdapter:
    """The adapter of ``--model`` and its options.

    Raises:
        InputError: an unreadable program, a module it does not have, or a bad input declaration.
    """
    def floats(text: str | None, what: str) -> tuple[float, ...] | None:
        if text is None:
            return None
        try:
            return tuple(float(v) for v in text.split(","))
        except ValueError:
            raise InputError(f"{what}: expected numbers separated by commas, got {text!r}") from None

    preprocess = Preprocess(size=parse_size(size), channels=_channels(channels), mean=floats(mean, "--input-mean"),
                            std=floats(std, "--input-std"))
    return ModelAdapter.from_file(path, penultimate=penultimate, head=head,
                                  taps=[t.strip() for t in (taps or "").split(",") if t.strip()], preprocess=preprocess)
