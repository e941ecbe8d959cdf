"""Serving a saved model over HTTP (``oodscope serve``; needs the ``serve`` extra:
``pip install 'oodscope[serve]'``).

Public API::

    from oodscope.serve import create_app, ServeSettings
    app = create_app("model/", ServeSettings(max_images=32))   # a FastAPI app; run it with uvicorn
"""

from oodscope.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
