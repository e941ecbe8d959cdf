"""The options of ``oodscope bench``: what is run (protocol, grid) and how (run options). Which
of them an experiment takes is its own declaration (:mod:`oodscope.bench.experiment`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from oodscope.bench.paper.methods import DEFAULT_GRID
from oodscope.cli.common import device_option, set_option, threads_option
from oodscope.detectors import registry
from oodscope.detectors.base import PRESET_NAMES
from oodscope.protocols import OneClass, protocol_names

F = Callable[..., Any]


def _stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f
    return apply


protocol_options = _stack(
    click.option("--protocol", type=click.Choice(protocol_names()), default=OneClass.name, show_default=True,
                 help="one-class: each class of --dataset in turn; mnist-vs-letters, split-mnist: multi-class, "
                      "a classifier of the in-distribution classes."),
    click.option("--dataset", default=None, help="In-distribution data set of the one-class protocol [grid: mnist]."),
    click.option("--classes", default=None, help="In-distribution classes (one-class), e.g. 0-9, 0,8 or 2 (default: all)."),
    click.option("--oe", "oe_dataset", default=None,
                 help="Data set of the known outliers (its train split) [one-class: emnist-letters; suite: emnist-letters "
                      "for mnist, cifar100 for cifar10; split-mnist: emnist-letters]."),
    click.option("--n-oe", default=None,
                 help="Number(s) of known outliers, comma-separated; 'all' = the whole set; a fraction such as 0.01 "
                      "(one-class) = that ratio gamma_l of the training set (Deep SAD's protocol) [16]."),
    click.option("--oe-classes", default=None,
                 help="Number(s) of outlier classes to draw from (one-class), or 'all'; 'next' = the class after the "
                      "in-distribution one, of the same data set (--oe DATASET) [all]."),
)

grid_options = _stack(
    click.option("--methods", default=None,
                 help=f"Comma-separated detector methods [grid: {','.join(DEFAULT_GRID)}; suite: a subset of its methods]. "
                      "Known: " + ", ".join(registry()) + "."),
    click.option("--seeds", default=None, help="Seeds, e.g. 0 or 0,1,2 or 0-4 [grid: 0]."),
    click.option("--preset", type=click.Choice(PRESET_NAMES), default="cpu", show_default=True, help="Detector settings preset."),
    set_option(),
    click.option("--variant", "variants", multiple=True, metavar="KEY=VALUE[,KEY=VALUE]",
                 help="A variant of the settings, one cell each for the methods having them (repeatable), "
                      "e.g. --variant taps=z4 --variant taps=z1+z2+z3+z4."),
)

conformal_options = _stack(
    click.option("--from", "from", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
                 help="--suite conformal: a benchmark directory whose saved scores (DIR/scores) it measures (repeatable)."),
    click.option("--splits", type=click.IntRange(min=1), default=None,
                 help="--suite conformal: random calibration/test splits per cell [1000]."),
)

run_options = _stack(
    device_option(),
    click.option("--data-root", type=click.Path(file_okay=False), default=None,
                 help="Data root (default: $OODSCOPE_DATA or ~/.cache/oodscope)."),
    click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
                 help="Directory of trained shared networks (GEOM's f, classifiers), reused across runs "
                      "(default: $OODSCOPE_CACHE or ~/.cache/oodscope/networks)."),
    click.option("--disk-cache/--no-disk-cache", default=True, show_default=True,
                 help="Keep trained shared networks on disk (--no-disk-cache: only within this run)."),
    click.option("--download/--no-download", default=True, show_default=True, help="Download missing data files."),
    click.option("--progress/--no-progress", default=True, show_default=True,
                 help="Show progress on stderr (bars on a terminal, a few lines in a log)."),
    threads_option(),
    click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="Where cells run: local = this process; ray = as Ray tasks (pip install 'oodscope[ray]'), "
                      "results still written by this process only."),
    click.option("--address", default=None,
                 help="Ray cluster to join (auto, or HOST:PORT); default: start a local Ray with this machine's CPUs."),
    click.option("--cpus-per-cell", type=click.IntRange(min=1), default=1, show_default=True,
                 help="CPUs each Ray task asks for (and torch's threads in it); GPUs follow the device / preset."),
    click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                 help="With --executor ray: how often a cell whose worker died is run again."),
)
