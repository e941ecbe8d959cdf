"""A model of yours in a benchmark (``oodscope bench --model FILE --penultimate ... --head ...``):
every detector that reads a classifier or a feature extractor reads that model, through
:class:`~oodscope.upstream.adapter.ModelAdapter`, instead of training oodscope's own; the others are
left out. Each results row records the model's fingerprint (SHA-256 of its weights and adapter
spec) as its upstream, so runs on different models never merge silently.

The model file is a ``torch.export`` program or an ONNX file: nothing is unpickled.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodscope.bench.options import parse_size
from oodscope.errors import InputError
from oodscope.upstream.adapter import AdapterSpec, ModelAdapter, Preprocess
from oodscope.upstream.base import UpstreamInfo


def adapter_spec(penultimate: str | None = None, head: str | None = None, taps: str | None = None,
                 size: str | None = None, channels: int | None = None, mean: str | None = None,
                 std: str | None = None, channels_last: bool = False) -> AdapterSpec:
    """The adapter spec of the command line's ``--penultimate``, ``--head``, ``--taps`` (comma-separated)
    and ``--input-size`` (HxW), ``--input-channels``, ``--input-mean``, ``--input-std`` (comma-separated).

    Raises:
        InputError: a bad input declaration.
    """
    def floats(text: str | None, what: str) -> tuple[float, ...] | None:
        if text is None:
            return None
        try:
            return tuple(float(v) for v in text.split(","))
        except ValueError:
            raise InputError(f"{what}: expected numbers separated by commas, got {text!r}") from None

    if channels is not None and channels not in (1, 3):
        raise InputError(f"--input-channels must be 1 (gray) or 3 (RGB), got {channels}")
    preprocess = Preprocess(size=parse_size(size), channels=channels, mean=floats(mean, "--input-mean"),
                            std=floats(std, "--input-std"))
    return AdapterSpec(penultimate, head, tuple(t.strip() for t in (taps or "").split(",") if t.strip()), preprocess,
                       channels_last)


@functools.lru_cache(maxsize=2)
def _loaded(path: str, spec_json: str) -> ModelAdapter:
    spec = AdapterSpec.from_json(json.loads(spec_json))
    adapter = ModelAdapter.from_file(path, penultimate=spec.penultimate, head=spec.head, taps=spec.taps,
                                     preprocess=spec.preprocess, channels_last=spec.channels_last)
    adapter.fingerprint()  # hashed once: every cell's copy carries it
    return adapter


@dataclass(frozen=True)
class BenchModel:
    """The model file of a benchmark and where the adapter reads it."""

    path: str
    spec: AdapterSpec = field(default_factory=AdapterSpec)

    def adapter(self) -> ModelAdapter:
        """A fresh adapter of the model (the program is read once per process)."""
        view = copy.copy(_loaded(str(self.path), json.dumps(self.spec.to_json(), sort_keys=True)))
        view.fitted, view._tap_shapes = None, None
        return view

    def info(self, adapter: ModelAdapter) -> UpstreamInfo:
        """The results rows' ``upstream`` entry: the model, by fingerprint and file name."""
        return UpstreamInfo("model", adapter.fingerprint(), 0.0, True, {"file": Path(self.path).name})

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "adapter": self.spec.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BenchModel | None:
        return None if not data else cls(str(data["path"]), AdapterSpec.from_json(data.get("adapter") or {}))

    @classmethod
    def from_options(cls, opts: dict[str, Any]) -> BenchModel | None:
        """The ``--model`` of ``oodscope bench`` and its adapter options (None without ``--model``)."""
        spec_opts = ("penultimate", "head", "taps", "input_size", "input_channels", "input_mean", "input_std")
        if not opts.get("model"):
            if any(opts.get(k) is not None for k in (*spec_opts, "channels_last")):
                raise InputError("--penultimate, --head, --taps, --input-* and --channels-last describe a model of "
                                 "yours: give it with --model")
            return None
        return cls(str(opts["model"]), adapter_spec(*(opts.get(k) for k in spec_opts), bool(opts.get("channels_last"))))
