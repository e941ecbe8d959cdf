"""Whether two results may share a table: the settings two rows of one method differ in."""

from __future__ import annotations

from typing import Any

from oodscope.errors import InputError

UNCOMPARED = ("device", "progress")  # settings that do not change a result


def settings_diff(old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = UNCOMPARED) -> list[str]:
    """The sorted settings both dicts hold with different values, those in ``ignore`` aside."""
    return sorted(k for k in old.keys() & new.keys() if k not in ignore and old[k] != new[k])


def row_settings(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings of a results row of ``method``, with those added to the detector after the row
    was written at the value it had before them (:meth:`Detector.saved_config`: its
    ``saved_defaults``, and the precision it scored in), so that they compare."""
    from oodscope.detectors import detector_class  # here, not above: the report reads this module without torch

    try:
        cls = detector_class(method)
    except InputError:  # a method this version does not have: compare what the row holds
        return settings
    return cls.saved_config(settings)
