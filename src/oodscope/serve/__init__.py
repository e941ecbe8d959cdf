"""Serving a saved model over HTTP (``oodscope serve``; needs the ``serve`` extra:
``pip install 'oodscope[serve]'``).

Public API::

    from oodscope.serve import create_app, ServeSettings
    app = create_app("model/", ServeSettings(max_images=32))   # a FastAPI app; run it with uvicorn

``create_app`` is imported on first use, so ``oodscope.serve.settings`` is readable without FastAPI.
"""

from typing import Any

from oodscope.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from oodscope.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'oodscope.serve' has no attribute {name!r}")
