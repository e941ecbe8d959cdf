"""``oodscope serve``: an HTTP scoring service of a saved model (:mod:`oodscope.serve`)."""

from __future__ import annotations

import importlib.util

import click

from oodscope.cli.common import apply_threads, engine_option, threads_option
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
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=None,
              help="How long the first request of a batch waits for others to join it "
                   "[default: 2 with workers, 10 with --workers 0].")
@click.option("--workers", type=click.IntRange(min=0), default=ServeSettings.workers, show_default=True,
              help="Scoring worker processes, each with a batch in flight and --threads / workers threads (at least one) "
                   "(0: score in the service's own process).")
@engine_option()
@threads_option()
def serve(model: str, host: str, port: int, max_upload_mb: float, max_images: int, max_batch: int,
          batch_wait_ms: float | None, workers: int, engine: str, threads: int | None) -> None:
    """Serve MODEL over HTTP: POST /score, GET /health, GET /model, docs at /docs.

    Needs the serve extra: pip install 'oodscope[serve]'.
    """
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"oodscope serve needs {', '.join(missing)}, which is not installed: pip install 'oodscope[serve]'")
    import uvicorn

    from oodscope.serve import create_app

    apply_threads(1 if workers else threads)  # with workers, this process only parses, decodes and answers
    settings = ServeSettings(max_upload_bytes=int(max_upload_mb * (1 << 20)), max_images=max_images, max_batch=max_batch,
                             batch_wait_s=None if batch_wait_ms is None else batch_wait_ms / 1000, workers=workers,
                             engine=engine)
    app = create_app(model, settings, threads=threads)
    click.echo(f"serving {model} on http://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
