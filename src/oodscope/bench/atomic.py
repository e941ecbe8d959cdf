"""Atomic file writing for the benchmark layer (see :mod:`oodscope.atomic`)."""

from oodscope.atomic import write_json_atomic, write_text_atomic

__all__ = ["write_json_atomic", "write_text_atomic"]
