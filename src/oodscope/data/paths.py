"""Where data sets live on disk: :func:`resolve_root`."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "OODSCOPE_DATA"
"""Environment variable naming the data root (used when no root is passed)."""


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root directory, without creating it.

    Precedence: the ``root`` argument, then the ``OODSCOPE_DATA`` environment
    variable, then the user cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``)
    joined with ``oodscope``. Empty strings count as unset, a relative
    ``XDG_CACHE_HOME`` is ignored (as the XDG spec says); ``~`` is expanded.
    """
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(ENV_DATA, "")
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", "") or "~/.cache").expanduser()
    base = cache if cache.is_absolute() else Path.home() / ".cache"
    return base / "oodscope"
