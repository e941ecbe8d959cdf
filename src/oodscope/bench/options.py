"""Parsing command-line values: class lists and ranges, budgets with ``all``, method lists,
``key=value`` settings and variants, and a plain grid's protocol from its options. Every wrong
value is an InputError naming the option."""

from __future__ import annotations

import json
import re
from typing import Any

from oodscope.bench.paper.methods import DEFAULT_GRID
from oodscope.detectors import registry
from oodscope.protocols import OE_ALL, OE_NEXT, OneClass, Protocol, make_protocol
from oodscope.settings import coerce
from oodscope.errors import InputError

_NEXT_SETTING = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")

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


def _number(text: str) -> int | float | None:
    """``text`` as an int, else as a float, else None."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def parse_radii(values: str | tuple[str, ...] | list[str], what: str = "--eps") -> list[float]:
    """Radii in [0, 1] from comma lists (an option given several times passes several), order
    kept, duplicates dropped: ``("0.1", "0.2,0.3")`` -> ``[0.1, 0.2, 0.3]``."""
    out: list[float] = []
    for text in [values] if isinstance(values, str) else values:
        for part in str(text).split(","):
            try:
                value = float(part)
            except ValueError:
                raise InputError(f"{what}: expected numbers in [0, 1], got {part.strip()!r}") from None
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{what}: expected numbers in [0, 1], got {part.strip()}")
            if value not in out:
                out.append(value)
    if not out:
        raise InputError(f"{what}: no radius given")
    return out


def parse_budgets(text: str, what: str = "value", fractions: bool = False, names: tuple[str, ...] = (ALL,)) -> list[int | float | str]:
    """A comma list of positive ints and/or the ``names`` (``all``), order kept, duplicates dropped;
    with ``fractions``, also numbers in (0, 1) (a ratio of the training set)."""
    out: list[int | float | str] = []
    allowed = "a positive integer" + (", a fraction in (0, 1)" if fractions else "") + " or " + " or ".join(
        repr(n) for n in names)
    for part in str(text).split(","):
        part = part.strip().lower()
        value: int | float | str
        if part in names:
            value = part
        else:
            value = _number(part)
            ok = (isinstance(value, int) and value >= 1) or (fractions and isinstance(value, float) and 0 < value < 1)
            if not ok:
                raise InputError(f"{what}: expected {allowed}, got {part!r}")
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


def _default(key: str, methods: list[str] | None) -> Any:
    """The default of setting ``key`` in the first of ``methods`` (all detectors if None) that has it."""
    classes = registry()
    for m in methods if methods is not None else list(classes):
        if m in classes and key in classes[m].defaults:
            return classes[m].defaults[key]
    return None


def _setting(item: str, what: str, methods: list[str] | None) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"{what}: expected key=value, got {item!r}")
    default = _default(key, methods)
    if default is None:
        try:
            return key, json.loads(raw)
        except json.JSONDecodeError:
            return key, raw
    return key, coerce(default, raw.strip())


def parse_settings(items: tuple[str, ...] | list[str], methods: list[str] | None = None) -> dict[str, Any]:
    """``["epochs=3", "widths=[8,8,8]", "taps=z3+z4"]`` -> a dict. A value is read as the type of
    the setting's default in ``methods`` (a list from ``a+b``, numbers, booleans); otherwise as
    JSON when possible, else as a string."""
    return dict(_setting(item, "--set", methods) for item in items)


def parse_variants(items: tuple[str, ...] | list[str], methods: list[str] | None = None) -> list[dict[str, Any]] | None:
    """``--variant`` values, each ``key=value[,key=value...]`` (values read as by
    :func:`parse_settings`; ``taps=z1+z2``), as one dict of settings each, or None."""
    out = []
    for item in items:
        parts = [p for p in _NEXT_SETTING.split(item) if p.strip()]
        if not parts:
            raise InputError(f"--variant: empty variant {item!r}")
        out.append(dict(_setting(p.strip(), "--variant", methods) for p in parts))
    return out or None


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


# defaults of a plain grid (without --suite); a suite has its own
GRID_DEFAULTS = {"methods": ",".join(DEFAULT_GRID), "dataset": "mnist", "oe_dataset": "emnist-letters", "n_oe": "16",
                 "oe_classes": "all", "seeds": "0"}


def build_protocol(opts: dict[str, Any]) -> Protocol:
    """The protocol of a plain grid from the ``oodscope bench`` options (raw strings, None when not given).

    Raises:
        InputError: an option that does not apply to the protocol, or a bad value.
    """
    name = opts["protocol"]
    budgets = lambda key, flag: None if opts[key] is None else tuple(parse_budgets(opts[key], flag))  # noqa: E731
    if name != OneClass.name:
        return make_protocol(name, dataset=opts["dataset"], classes=opts["classes"], oe_dataset=opts["oe_dataset"],
                             n_oe=budgets("n_oe", "--n-oe"), oe_classes=opts["oe_classes"])
    return make_protocol(
        name,
        dataset=opts["dataset"] or GRID_DEFAULTS["dataset"],
        classes=None if opts["classes"] is None else tuple(parse_int_list(opts["classes"], "--classes")),
        oe_dataset=opts["oe_dataset"] or GRID_DEFAULTS["oe_dataset"],
        n_oe=tuple(parse_budgets(opts["n_oe"] or GRID_DEFAULTS["n_oe"], "--n-oe", fractions=True)),
        oe_classes=tuple(parse_budgets(opts["oe_classes"] or GRID_DEFAULTS["oe_classes"], "--oe-classes",
                                       names=(OE_ALL, OE_NEXT))),
    )
