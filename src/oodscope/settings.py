"""Checking and reading settings of detectors and networks, so a wrong value is refused by name
where it is given, not deep inside training.

A setting's type is that of its default (``bool``, ``int``, ``float``, ``str``, ``list``);
string settings may also have a fixed set of choices. :func:`coerce` reads a command-line value
(``"z3+z4"`` for a list setting, ``"3"`` for a number) into that type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from oodscope.errors import InputError

IGNORED = ("progress",)  # settings that do not change what is learnt


def _type_name(default: Any) -> str:
    return "a list" if isinstance(default, list) else f"a {type(default).__name__}"


def _fits(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_settings(owner: str, defaults: Mapping[str, Any], given: Mapping[str, Any],
                   choices: Mapping[str, tuple[Any, ...]] | None = None) -> dict[str, Any]:
    """``defaults`` updated with ``given`` (deep copies), after checking every given setting.

    Raises:
        InputError: an unknown setting, a value of the wrong type, or a value outside its choices.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"{owner}: unknown settings {unknown}; known: {sorted(defaults)}")
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if not _fits(defaults[key], value):
            raise InputError(f"{owner}: setting {key!r} must be {_type_name(defaults[key])}, got {value!r}")
        allowed = (choices or {}).get(key)
        if allowed is not None and value not in allowed:
            raise InputError(f"{owner}: setting {key!r} must be one of {', '.join(map(str, allowed))}; got {value!r}")
        out[key] = list(value) if isinstance(value, tuple) else copy.deepcopy(value)
    return out


def coerce(default: Any, raw: str) -> Any:
    """A command-line value for a setting whose default is ``default``: JSON if it parses, else the
    text; for a list setting, text is split on ``+`` or ``,`` (``z3+z4`` -> ``["z3", "z4"]``)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if isinstance(default, list) and isinstance(value, str):
        return [p.strip() for p in value.replace("+", ",").split(",") if p.strip()]
    if isinstance(default, list) and not isinstance(value, list):
        return [value]
    return value


def settings_key(settings: Mapping[str, Any]) -> str:
    """A string identity of settings, ignoring display-only ones (``progress``)."""
    return json.dumps({k: v for k, v in settings.items() if k not in IGNORED}, sort_keys=True)
