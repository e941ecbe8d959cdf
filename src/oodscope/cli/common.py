"""Options and helpers shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import torch

F = Callable[..., Any]


def threads_option(default: int | None = None) -> Callable[[F], F]:
    """``--threads N``: CPU threads for torch (default: torch's own choice, or ``default``)."""
    return click.option(
        "--threads", type=click.IntRange(min=1), default=default, show_default=default is not None,
        help="CPU threads torch may use. Small networks run fastest on 1-2; on a busy machine "
             "fewer threads avoid heavy slow-downs.",
    )


ENGINE_CHOICES = ("auto", "torch", "onnxruntime")  # oodscope.export.engine.ENGINES, without importing torch's exporter here


def engine_option() -> Callable[[F], F]:
    """``--engine``: what scores a model directory (:mod:`oodscope.export.engine`)."""
    return click.option(
        "--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
        help="auto: a float32 model whose score is one graph (geom, geom+, bce, layers, msp, energy, max-logit) runs "
             "that graph under onnxruntime on the CPU when the onnx extra is installed (the exported file's numbers, "
             "faster), other models torch; torch or onnxruntime to insist.",
    )


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count when ``threads`` is given."""
    if threads is not None:
        torch.set_num_threads(threads)


def device_option() -> Callable[[F], F]:
    """``--device``: overrides the preset's device (cpu, cuda, cuda:1, auto)."""
    return click.option("--device", default=None, help="Device for training: cpu, cuda, cuda:N or auto. Overrides the preset.")


def set_option() -> Callable[[F], F]:
    """``--set KEY=VALUE`` (repeatable): detector settings on top of the preset."""
    return click.option(
        "--set", "settings", multiple=True, metavar="KEY=VALUE",
        help="Detector setting on top of the preset (repeatable; VALUE read as the setting's type: "
             "numbers, true/false, a list as a+b or JSON), e.g. --set epochs=3 --set taps=z3+z4.",
    )


MODEL_OPTIONS = ("model", "penultimate", "head", "taps", "input_size", "input_channels", "input_mean", "input_std",
                 "channels_last")


def stacked(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying ``options`` in the order listed (the first shown first in --help)."""
    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def model_options(what: str) -> Callable[[F], F]:
    """``--model`` (a classifier or backbone of yours, as a ``.pt2`` or ``.onnx`` file) and where the
    adapter reads it; ``what``: what the command does with it (help text)."""
    options = [
        click.option("--model", default=None, type=click.Path(dir_okay=False),
                     help=f"A classifier or backbone of yours, as a torch.export program (.pt2) or an ONNX file: {what}"),
        click.option("--penultimate", default=None, help="With --model: the module whose output is the penultimate features (e.g. avgpool)."),
        click.option("--head", default=None, help="With --model: the final linear layer (e.g. fc)."),
        click.option("--taps", default=None, help="With --model: further modules to tap, comma-separated (e.g. layer3,layer4)."),
        click.option("--input-size", default=None, metavar="HxW", help="With --model: the input size it takes (images are resized)."),
        click.option("--input-channels", type=int, default=None, help="With --model: the channels it takes (1 or 3; grey and RGB are converted)."),
        click.option("--input-mean", default=None, help="With --model: per-channel mean it normalises with, comma-separated."),
        click.option("--input-std", default=None, help="With --model: per-channel standard deviation, comma-separated."),
        click.option("--channels-last", is_flag=True, default=None,
                     help="With --model: run it in the channels_last memory format (on a CPU often faster; "
                          "scores may differ from the default format in the last bits)."),
    ]
    return stacked(options)


def decision_options(what: str) -> Callable[[F], F]:
    """``--alpha``, ``--fdr``, ``--fdr-rule``, ``--class-conditional``: a decision rule on conformal
    p-values (:mod:`oodscope.pipeline.decisions`); ``what``: where it applies (help text)."""
    options = [
        click.option("--alpha", type=float, default=None,
                     help=f"Per-image rule: ood when the conformal p-value is at most ALPHA, so an in-distribution image "
                          f"is flagged with probability at most ALPHA ({what})."),
        click.option("--fdr", type=float, default=None,
                     help=f"False-discovery-rate rule at level Q: at most a share Q of the flagged images are expected "
                          f"to be in-distribution ({what}; see --fdr-rule)."),
        click.option("--fdr-rule", type=click.Choice(["bh", "lond", "lord++"]), default="bh", show_default=True,
                     help="With --fdr: bh = Benjamini-Hochberg over the batch; lond or lord++ = an online rule over the "
                          "images in order (lond: guaranteed for conformal p-values; lord++: guaranteed for independent "
                          "p-values). Both need large calibration sets to flag anything (docs/lab/BENCHMARKS.md)."),
        click.option("--class-conditional", is_flag=True, default=False,
                     help="p-values against the calibration images of the same predicted class (detectors that read "
                          "a classifier); the guarantee then holds within each class."),
    ]
    return stacked(options)
