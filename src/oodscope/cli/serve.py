"""``oodscope serve``: an HTTP scoring service of a saved model (:mod:`oodscope.serve`)."""

from __future__ import annotations

import importlib.util

import click

from oodscope.cli.common import apply_threads, threads_option
from oodscope.errors import InputError
from oodscope.serve.settings import ServeSettings


@click.command()
@click.argument("model", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True),
              default=ServeSettings.max_upload_bytes / (1 << 20), show_default=True,
              help="Largest request body accepted (413 above).")
@click.option("--max-images", type=click.IntRange(min=1), default=ServeSettings.max_images, show_default=True,
              help="Most images accepted in one request (413 above).")
@click.option("--max-batch", type=click.IntRange(min=1), default=ServeSettings.max_batch, show_default=True,
              help="Most images the network scores at once, gathered across concurrent requests.")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=ServeSettings.batch_wait_s * 1000, show_default=True,
              help="How long the first request of a batch waits for others to join it.")
@threads_option()
def serve(model: str, host: str, port: int, max_upload_mb: float, max_images: int, max_batch: int,
          batch_wait_ms: float, threads: int | None) -> None:
    """Serve MODEL over HTTP: POST /score, GET /health, GET /model, docs at /docs.

    Needs the serve extra: pip install 'oodscope[serve]'.
    """
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"oodscope serve needs {', '.join(missing)}, which is not installed: pip install 'oodscope[serve]'")
    import uvicorn

    from oodscope.serve import create_app

    apply_threads(threads)
    settings = ServeSettings(max_upload_bytes=int(max_upload_mb * (1 << 20)), max_images=max_images, max_batch=max_batch,
                             batch_wait_s=batch_wait_ms / 1000)
    app = create_app(model, settings, threads=threads)
    click.echo(f"serving {model} on http://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
