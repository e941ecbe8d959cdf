"""Benchmark cells: one (protocol, data set, method, variant, seed, preset, protocol fields)
experiment each, and what a protocol needs to know of a method to plan cells for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oodscope.results.schema import cell_key, label


def freeze(value: Any) -> Any:
    """``value`` with lists made tuples (recursively), so cells are hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: tuples back to lists, as JSON holds them."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class MethodInfo:
    """What planning needs of a detector: its name, whether it trains with known outliers or needs
    class labels, and the names of its settings (a variant applies to a method only if it has
    those settings)."""

    name: str
    uses_outliers: bool
    settings: frozenset[str]
    needs_labels: bool = False


@dataclass(frozen=True)
class Cell:
    """One experiment of a benchmark; :meth:`key` identifies it in ``results.jsonl``.

    Attributes:
        protocol: Protocol name (``one-class``, ``multi-class``).
        dataset: The in-distribution data set.
        method: Detector method (a registered name).
        seed: Seed of the detector and of every random choice of the protocol for this cell.
        preset: Name of the settings preset.
        fields: The protocol's fields, in its order (e.g. ``id_class``, ``n_oe``, ...).
        variant: Settings that distinguish this cell from others of the same method
            (e.g. ``(("taps", ("z4",)),)``); empty for the preset's settings.
    """

    protocol: str
    dataset: str
    method: str
    seed: int
    preset: str
    fields: tuple[tuple[str, Any], ...] = ()
    variant: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, name: str) -> Any:
        for k, v in self.fields:
            if k == name:
                return v
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        """A protocol field, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    @property
    def variant_settings(self) -> dict[str, Any] | None:
        """The variant as settings (lists, as JSON holds them), or None."""
        return {k: thaw(v) for k, v in self.variant} or None

    @property
    def label(self) -> str:
        """The method as tables show it: ``layers`` or ``layers[z4]``."""
        return label(self.method, self.variant_settings)

    def row_fields(self) -> dict[str, Any]:
        """The identifying fields as a results row holds them."""
        return {"protocol": self.protocol, "dataset": self.dataset, "method": self.method,
                "variant": self.variant_settings, "seed": self.seed, "preset": self.preset,
                "protocol_fields": {k: thaw(v) for k, v in self.fields}}

    def key(self) -> str:
        """The cell's identity, equal to :func:`oodscope.results.row_key` of its row."""
        r = self.row_fields()
        return cell_key(r["protocol"], r["dataset"], r["method"], r["variant"], r["seed"], r["preset"], r["protocol_fields"])

    def describe(self) -> str:
        """``class 2 seed 0 n_oe 16``-style text for log lines."""
        names = {"id_class": "class"}
        parts = [f"{names.get(k, k)} {v}" for k, v in self.fields if k not in ("oe_classes", "oe_dataset")]
        return " ".join([*parts[:1], f"seed {self.seed}", *parts[1:]])


def variants_for(method: MethodInfo, variants: list[dict[str, Any]] | None) -> list[tuple[tuple[str, Any], ...]]:
    """The variants that apply to ``method`` (those whose settings it has), frozen; ``[()]`` (the
    preset's settings) when none applies."""
    chosen = [tuple(sorted((k, freeze(v)) for k, v in var.items()))
              for var in variants or [] if var and set(var) <= method.settings]
    return chosen or [()]
