"""The plain grid: detectors x seeds (x variants) under a protocol, one cell each
(:func:`oodscope.bench.runner.run_bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodscope.bench.user_model import BenchModel
from oodscope.bench.config import BenchConfig, RunOptions
from oodscope.bench.experiment import Experiment, Outcome, register_experiment

MODEL_OPTIONS = frozenset({"model", "penultimate", "head", "taps", "input_size", "input_channels", "input_mean",
                           "input_std", "channels_last"})  # a model of yours (oodscope.bench.user_model)
GRID_OPTIONS = frozenset({"protocol", "dataset", "classes", "oe_dataset", "n_oe", "oe_classes", "methods", "seeds",
                          "preset", "settings", "variants"}) | MODEL_OPTIONS
SUITE_OPTIONS = GRID_OPTIONS - {"variants"} - MODEL_OPTIONS  # a suite sets its own variants (and networks)


def grid_config(opts: dict[str, Any], out: str | Path, run: RunOptions, command: list[str] | None) -> BenchConfig:
    """The :class:`BenchConfig` of a plain grid from the ``oodscope bench`` options."""
    from oodscope.bench.options import GRID_DEFAULTS, build_protocol, parse_int_list, parse_methods, parse_settings, parse_variants

    methods = parse_methods(opts["methods"] or GRID_DEFAULTS["methods"])
    return BenchConfig(out=out, protocol=build_protocol(opts), methods=methods,
                       seeds=parse_int_list(opts["seeds"] or GRID_DEFAULTS["seeds"], "--seeds"), preset=opts["preset"],
                       variants=parse_variants(opts["variants"], methods), overrides=parse_settings(opts["settings"], methods),
                       run=run, command=command, model=BenchModel.from_options(opts))


@register_experiment
class Grid(Experiment):
    kind = "grid"
    takes = GRID_OPTIONS
    torchrun = True
    figures = "redraw"
    help = "without --suite: a plain grid of --methods x --seeds (x --variant) under --protocol"

    def run(self, out: Path, run: RunOptions, command: list[str] | None) -> Outcome:
        from oodscope.bench.runner import run_bench
        from oodscope.training import distributed

        config = grid_config(self.options, out, run, command)
        run_bench(config)
        if not distributed.is_main():  # torchrun: rank 0 reports
            return Outcome()
        return Outcome((config.directory / "summary.md").read_text(encoding="utf-8"), [config.directory / "summary.md"])
