"""Whether two results may share a table: the settings two rows of one method differ in."""

from __future__ import annotations

from typing import Any

UNCOMPARED = ("device", "progress")  # settings that do not change a result


def settings_diff(old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = UNCOMPARED) -> list[str]:
    """The sorted settings both dicts hold with different values, those in ``ignore`` aside."""
    return sorted(k for k in old.keys() & new.keys() if k not in ignore and old[k] != new[k])
