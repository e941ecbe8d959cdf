"""Evaluation protocols: which images are in-distribution, which are OOD, which are known outliers.

Public API::

    from oodscope.protocols import OneClass, MultiClass, protocol_names, make_protocol
    from oodscope.protocols import one_class, split_one_class, sample_outliers, normalization_stats

* :class:`OneClass` - one class of a data set is in-distribution; training uses only that
  class's training images; the whole test split is evaluated with every other class OOD.
* :class:`MultiClass` - all classes of a labelled data set are in-distribution, with a held-out
  validation split; OOD test images come from another data set or held-out classes
  (``mnist-vs-letters``, ``split-mnist``).
* A protocol object plans its :class:`Cell` objects and gives each cell's :class:`Task`.
* :func:`sample_outliers` - a deterministic sample of known outliers (outlier exposure).

This layer imports only :mod:`oodscope.data`, :mod:`oodscope.results` and :mod:`oodscope.errors`.
"""

from __future__ import annotations

from typing import Any

from oodscope.errors import InputError
from oodscope.protocols.base import DataStore, Protocol, Task
from oodscope.protocols.cells import Cell, MethodInfo, freeze, thaw, variants_for
from oodscope.protocols.multi_class import BENCHMARKS, Benchmark, MultiClass
from oodscope.protocols.one_class import OE_ALL, OE_NEXT, OneClass, OneClassSplit, check_budget, one_class, split_one_class
from oodscope.protocols.outliers import sample_outliers
from oodscope.protocols.stats import normalization_stats


def protocol_names() -> list[str]:
    """Names ``--protocol`` accepts: ``one-class`` and every multi-class benchmark."""
    return [OneClass.name, *BENCHMARKS]


def make_protocol(name: str, **options: Any) -> Protocol:
    """The protocol ``name`` with ``options`` (its dataclass fields; None values are left out).

    Raises:
        InputError: unknown name, or an option the protocol does not have.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if name == OneClass.name:
        cls, kwargs = OneClass, options
    elif name in BENCHMARKS:
        cls, kwargs = MultiClass, {"benchmark": name, **options}
    else:
        raise InputError(f"unknown protocol {name!r}; known: {', '.join(protocol_names())}")
    stray = sorted(set(kwargs) - set(cls.__dataclass_fields__))
    if stray:
        flags = ", ".join("--" + s.replace("_", "-") for s in stray)
        raise InputError(f"protocol {name}: {flags} does not apply")
    return cls(**kwargs)


__all__ = [
    "BENCHMARKS",
    "OE_ALL",
    "OE_NEXT",
    "Benchmark",
    "Cell",
    "DataStore",
    "MethodInfo",
    "MultiClass",
    "OneClass",
    "OneClassSplit",
    "Protocol",
    "Task",
    "check_budget",
    "freeze",
    "make_protocol",
    "normalization_stats",
    "one_class",
    "protocol_names",
    "sample_outliers",
    "split_one_class",
    "thaw",
    "variants_for",
]
