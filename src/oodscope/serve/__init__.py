"""Serving a saved model over HTTP (``oodscope serve``; needs the ``serve`` extra:
``pip install 'oodscope[serve]'``).

Public API::

    from oodscope.serve import create_app, ServeSettings
    app = create_app("model/", ServeSettings(max_images=32))   # a FastAPI app; run it with uvicorn
    app = create_app("model/", api_key=key, rule=DecisionRule("lond", 0.1), fdr_state="state.json")

``api_key``: every endpoint but ``/health`` then needs ``Authorization: Bearer <key>``
(:mod:`oodscope.serve.auth`). ``rule`` (:mod:`oodscope.pipeline.decisions`; default: the rule saved
with the model, else its threshold) turns each image's conformal p-value into its verdict; an online
rule's state is loaded from and saved to ``fdr_state``.

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
