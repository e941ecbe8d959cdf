"""Parsing command-line values: class lists and ranges, budgets with ``all``, method lists, ``key=value`` settings."""

from __future__ import annotations

import json
from typing import Any

from oodscope.errors import InputError

ALL = "all"


def parse_int_list(text: str, what: str = "value") -> list[int]:
    """``"0-9"``, ``"0,8"``, ``"2"`` or mixtures like ``"0-3,7"`` -> sorted unique non-negative ints.

    Raises:
        InputError: anything else (empty parts, descending ranges, non-integers).
    """
    out: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if a > b:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                a = int(part)
                if a < 0:
                    raise ValueError
                out.add(a)
        except ValueError:
            raise InputError(f"{what}: cannot read {part!r} in {text!r}; use e.g. 0-9, 0,8 or 2") from None
    return sorted(out)


def parse_budgets(text: str, what: str = "value") -> list[int | str]:
    """A comma list of positive ints and/or ``all``, order kept, duplicates dropped."""
    out: list[int | str] = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if part == ALL:
            value: int | str = ALL
        else:
            try:
                value = int(part)
            except ValueError:
                raise InputError(f"{what}: expected a positive integer or 'all', got {part!r}") from None
            if value < 1:
                raise InputError(f"{what}: expected a positive integer or 'all', got {part!r}")
        if value not in out:
            out.append(value)
    return out


def parse_methods(text: str) -> list[str]:
    """``"geom, layers"`` -> ``["geom", "layers"]`` (order kept, duplicates dropped).

    Raises:
        InputError: no method named.
    """
    out = list(dict.fromkeys(m.strip() for m in str(text).split(",") if m.strip()))
    if not out:
        raise InputError(f"--methods: no method in {text!r}")
    return out


def parse_settings(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["epochs=3", "widths=[8,8,8]", "backbone=small"]`` -> a dict; values are read as
    JSON when possible, else kept as strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set: expected key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def parse_taps(items: tuple[str, ...] | list[str]) -> list[tuple[str, ...]] | None:
    """``--taps`` values (each a ``+``- or comma-separated list of taps) -> variants, or None."""
    variants = []
    for item in items:
        taps = tuple(t.strip() for t in item.replace("+", ",").split(",") if t.strip())
        if not taps:
            raise InputError(f"--taps: empty variant {item!r}")
        variants.append(taps)
    return variants or None


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"28x28"`` (height x width) or ``"32"`` -> (height, width); None stays None."""
    if text is None:
        return None
    parts = str(text).lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise InputError(f"--size: expected HEIGHTxWIDTH like 28x28, got {text!r}")
    return dims[0], dims[1]
