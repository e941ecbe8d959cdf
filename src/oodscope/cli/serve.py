"""``oodscope serve``: an HTTP scoring service of a saved model (:mod:`oodscope.serve`), with an
API key (:mod:`oodscope.serve.auth`) and decisions by conformal p-values
(:mod:`oodscope.pipeline.decisions`)."""

from __future__ import annotations

import importlib.util
import logging
import sys

import click

from oodscope.cli.common import apply_threads, decision_options, engine_option, threads_option
from oodscope.errors import InputError
from oodscope.serve.auth import ENV_KEY, LOG, bind_check, read_key
from oodscope.serve.settings import ServeSettings


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to whatever ``sys.stderr`` is when they are written."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def _log_to_stderr() -> None:
    """The service's log lines (``oodscope.serve``, INFO and above) on stderr, once."""
    LOG.setLevel(logging.INFO)
    if not any(isinstance(h, _Stderr) for h in LOG.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        LOG.addHandler(handler)


@click.command()
@click.argument("model", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Without an API key only a loopback address (127.0.0.1, ::1, localhost) is "
                   "accepted, unless --no-auth.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
              help=f"File holding the API key (surrounding whitespace ignored); default: the {ENV_KEY} environment "
                   "variable. With a key, every endpoint but /health needs the header 'Authorization: Bearer <key>'.")
@click.option("--no-auth", is_flag=True, default=False,
              help="Serve without an API key on a non-loopback --host: open to anyone who can reach it.")
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
@decision_options("in each request, or with an online --fdr-rule over all requests in order; default: the rule "
                  "saved with the model, else its threshold")
@click.option("--fdr-state", type=click.Path(dir_okay=False), default=None,
              help="With an online rule (lond, lord++): load its state from this file at start if it exists, and save "
                   "it there after every request, so that a restarted service continues it (default: kept in memory "
                   "only).")
@engine_option()
@threads_option()
def serve(model: str, host: str, port: int, api_key_file: str | None, no_auth: bool, max_upload_mb: float,
          max_images: int, max_batch: int, batch_wait_ms: float | None, workers: int, alpha: float | None,
          fdr: float | None, fdr_rule: str, class_conditional: bool, fdr_state: str | None, engine: str,
          threads: int | None) -> None:
    """Serve MODEL over HTTP: POST /score, GET /health, GET /model, docs at /docs.

    POST /score returns each image's score, conformal p-value (against the model's calibration
    scores) and verdict by the decision rule in force (--alpha, --fdr, else the rule saved with
    the model, else its threshold). Give an API key (--api-key-file or OODSCOPE_API_KEY) to
    require it on every endpoint but /health. Every request is logged on stderr, without its
    content. --class-conditional needs --workers 0 (the worker processes return scores only).

    Needs the serve extra: pip install 'oodscope[serve]'.
    """
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"oodscope serve needs {', '.join(missing)}, which is not installed: pip install 'oodscope[serve]'")
    api_key = read_key(api_key_file)
    level, first_line = bind_check(host, port, api_key, no_auth)
    import uvicorn

    from oodscope.pipeline.decisions import rule_from_options
    from oodscope.serve import create_app

    rule = rule_from_options(alpha, fdr, fdr_rule, class_conditional)
    apply_threads(1 if workers else threads)  # with workers, this process only parses, decodes and answers
    settings = ServeSettings(max_upload_bytes=int(max_upload_mb * (1 << 20)), max_images=max_images, max_batch=max_batch,
                             batch_wait_s=None if batch_wait_ms is None else batch_wait_ms / 1000, workers=workers,
                             engine=engine)
    app = create_app(model, settings, threads=threads, api_key=api_key, rule=rule, fdr_state=fdr_state)
    _log_to_stderr()
    LOG.log(level, "%s", first_line)
    decision = app.state.decision
    LOG.info("serving %s on http://%s:%d (docs at /docs); decisions: %s (guarantee: %s)", model, host, port,
             decision["rule"], decision["guarantee"])
    uvicorn.run(app, host=host, port=port, log_level="warning")
