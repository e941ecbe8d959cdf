"""Exceptions raised by oodscope. Each names the problem in plain words."""

from __future__ import annotations


class OodscopeError(Exception):
    """Base class of every error oodscope raises on purpose."""


class DataError(OodscopeError, ValueError):
    """A data set or image file is missing, unreadable, truncated or fails its checksum."""


class InputError(OodscopeError, ValueError):
    """An array given to a detector has the wrong shape, channels, dtype, is empty or holds NaN."""


class ModelFileError(OodscopeError, ValueError):
    """A saved model is missing, unreadable, inconsistent with its config or tampered with."""


class ModelCapabilityError(InputError):
    """A model of yours cannot give what a detector needs (gradients, dropout, another precision):
    raised by the model without the detector's name, which the detector adds."""
