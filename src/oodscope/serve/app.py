"""The HTTP scoring service of a saved model (``oodscope serve``), built on FastAPI.

Endpoints:

* ``POST /score``: one or many images, as a multipart upload of PNG / JPEG files (any field
  name) or as JSON ``{"images": [...]}`` (a nested array ``(N, H, W)`` or ``(N, C, H, W)`` of 0..255
  integers or of floats in [0, 1]); each is converted to the model's size and channels. Returns,
  per image in the order sent, its name, score, conformal p-value against the model's
  calibration scores (null if it has none; :mod:`oodscope.metrics.conformal`) and verdict by the
  decision rule in force (:mod:`oodscope.pipeline.decisions`), the rule itself, and the model's
  identity (method, SHA-256 of its weights).
* ``GET /health``; ``GET /model``: settings, image size, threshold and how it was chosen, how
  many images (held out, known outliers) it was fitted on, the decision rule in force (with the
  guarantee it states), the calibration it reads (its size and source, never its scores) and, for
  an online rule, how many images it has decided and flagged.

The model is a saved model directory or an exported ONNX file (:mod:`oodscope.export`).
* OpenAPI docs at ``/docs``.

The model is loaded (checksum verified, nothing unpickled) and scores the images of concurrent
requests in shared batches (:class:`~oodscope.serve.batcher.MicroBatcher`); a model given as a
file path scores in ``ServeSettings.workers`` worker processes (:mod:`oodscope.serve.worker`),
each with a batch in flight; a fitted detector (or ``workers=0``) in a thread of this process. Uploads
above ``max_upload_bytes`` are refused with 413, more than ``max_images`` images with 413, and
undecodable files, wrong channel counts and images that cannot be converted with 422, each with
a message that names the problem; no bad input crashes the service.

Decisions (Bates, Candès, Lei, Romano & Sesia, "Testing for outliers with conformal p-values",
2023): ``threshold`` (score above the model's threshold), ``alpha`` (p <= alpha per image), ``bh``
(Benjamini–Hochberg over each request's images) or an online FDR rule (``lond``, ``lord++``) over
the service's images in the order it decides them: one request at a time, under a lock, its state
saved atomically after every request to the ``fdr_state`` file (loaded from it at start) when
one is given. A request whose state cannot be saved is refused (500) and leaves the state as it
was. Class-conditional p-values need the predicted classes, which only in-process scoring
(``workers=0``, torch) returns.

With an ``api_key`` every endpoint but ``/health`` needs ``Authorization: Bearer <key>``, and every
request is logged on the ``oodscope.serve`` logger without its content (:mod:`oodscope.serve.auth`).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from oodscope.data import convert
from oodscope.detectors import Detector
from oodscope.errors import DataError, InputError
from oodscope.export.loading import identity as model_identity
from oodscope.export.loading import engine_of, load_scorer, with_classes
from oodscope.export.onnx_runtime import is_onnx_model
from oodscope.pipeline.decisions import DecisionRule, model_rule, scores_and_classes
from oodscope.pipeline.files import model_geometry, read_for_model
from oodscope.pipeline.thresholds import public_rule
from oodscope.serve.auth import AccessLog, BearerAuth, check_key, note
from oodscope.serve.batcher import MicroBatcher
from oodscope.serve.decisions import Decisions
from oodscope.serve.settings import ServeSettings
from oodscope.serve.worker import WorkerScorer, worker_threads


def _fail(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _fail(413, f"upload of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _fail(413, f"upload exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_images(body: bytes, size: tuple[int, int], channels: int) -> tuple[list[str], np.ndarray]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(400, f"body is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "images" not in doc:
        raise _fail(422, 'JSON body must be an object {"images": [...]}')
    try:
        x = np.asarray(doc["images"])
    except ValueError as e:
        raise _fail(422, f"images: not a regular nested array ({e})") from None
    if x.size == 0:
        raise _fail(422, "images: empty")
    if x.dtype.kind not in "iuf":
        raise _fail(422, f"images: values must be numbers, got {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise _fail(422, f"images: expected shape (N, H, W) or (N, C, H, W), got {list(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise _fail(422, f"images: expected 1 or 3 channels on axis 1, got {x.shape[1]} (shape {list(x.shape)})")
    if not np.all(np.isfinite(x)):
        raise _fail(422, "images: NaN or infinite values")
    if x.dtype.kind == "f" and x.min() >= 0 and x.max() <= 1:
        x = np.round(x * 255)
    elif x.min() < 0 or x.max() > 255:
        raise _fail(422, "images: values must be 0..255 integers or floats in [0, 1]")
    names = [f"images[{i}]" for i in range(len(x))]
    return names, _convert(x.astype(np.uint8), size, channels, names)


def _convert(x: np.ndarray, size: tuple[int, int], channels: int, names: list[str]) -> np.ndarray:
    try:
        return convert(np.ascontiguousarray(x), size, channels)
    except (DataError, InputError, ValueError, OSError) as e:
        raise _fail(422, f"{names[0] if len(names) == 1 else 'images'}: cannot convert to the model's "
                         f"{size[0]}x{size[1]}, {channels} channel(s) ({e})") from None


def _decode_upload(name: str, data: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """One uploaded file as uint8 ``(channels, H, W)`` at the model's size (422 if it cannot be)."""
    if not data:
        raise _fail(422, f"{name}: empty file")
    try:
        return read_for_model(io.BytesIO(data), size, channels, name)
    except DataError as e:
        raise _fail(422, str(e)) from None
    except (InputError, ValueError, OSError) as e:
        raise _fail(422, f"{name}: cannot convert to the model's {size[0]}x{size[1]}, {channels} channel(s) ({e})") from None


async def _multipart_images(request: Request, body: bytes, settings: ServeSettings, size: tuple[int, int],
                            channels: int) -> tuple[list[str], np.ndarray]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=settings.max_images + 1, max_fields=100)
    except HTTPException:
        raise
    except Exception as e:  # malformed multipart, or more parts than allowed
        raise _fail(400 if "max" not in str(e).lower() else 413, f"cannot read the multipart upload ({e})") from None
    uploads = [(key, v) for key, v in form.multi_items() if isinstance(v, UploadFile)]
    try:
        if not uploads:
            raise _fail(422, "no files in the upload: send images as multipart files (e.g. -F files=@image.png)")
        if len(uploads) > settings.max_images:
            raise _fail(413, f"{len(uploads)} images exceed the limit of {settings.max_images} per request")
        names = [u.filename or f"{key}[{i}]" for i, (key, u) in enumerate(uploads)]
        datas = [await u.read() for _, u in uploads]
    finally:
        await form.close()
    images = await run_in_threadpool(lambda: np.stack([_decode_upload(n, d, size, channels) for n, d in zip(names, datas)]))
    return names, images


def _with_classes(detector: Any) -> Callable[[np.ndarray], np.ndarray]:
    """In-process scoring that also returns the predicted classes: ``(N, 2)`` [score, class]."""
    def score(x: np.ndarray) -> np.ndarray:
        s, k = scores_and_classes(detector, x)
        if k is None:
            raise InputError(f"{detector.method}: class-conditional p-values need the classifier's logits, which this "
                             "detector does not return")
        return np.column_stack([s, k.astype(np.float64)])
    return score


def _slot(workers: list[WorkerScorer], i: int) -> Callable[[np.ndarray], np.ndarray]:
    """Scoring with the ``i``-th worker once the app has started them."""
    return lambda x: workers[i](x)


def create_app(model: str | Path | Detector, settings: ServeSettings | None = None, weights_sha256: str | None = None,
               threads: int | None = None, *, api_key: str | None = None, rule: DecisionRule | None = None,
               fdr_state: str | os.PathLike[str] | None = None) -> FastAPI:
    """The service of ``model``: a saved model directory, an exported ``.onnx`` file (run with
    onnxruntime on ``threads`` threads), or a fitted detector (with its weights' hash, if known).
    A file model scores in ``settings.workers`` worker processes started with the app, sharing
    ``threads`` torch threads (default: one per core; see :mod:`oodscope.serve.worker`).

    ``api_key``: every endpoint but ``/health`` then needs ``Authorization: Bearer <api_key>``.
    ``rule``: the decision rule (default: the one recorded with the model, else its threshold);
    ``fdr_state``: the file an online rule's state is loaded from (if it exists) and saved to.

    Raises:
        InputError: a rule the model's calibration cannot serve (none, too few images for the level,
        no predicted classes), class-conditional p-values with worker processes or onnxruntime, or a
        state file that is not one for this rule.
    """
    settings = settings or ServeSettings()
    key = None if api_key is None else check_key(api_key, "api_key")
    if isinstance(model, Detector):
        detector, identity = model, {"method": model.method, "weights_sha256": weights_sha256}
    else:  # with workers, this process reads the model's facts only: its own copy never scores
        detector = load_scorer(model, threads, "torch" if settings.workers > 0 and not is_onnx_model(model)
                               else settings.engine)
        identity = model_identity(model, detector)
    rule = rule or model_rule(detector)
    n_workers = settings.workers if not isinstance(model, Detector) else 0
    if rule.class_conditional:
        if n_workers > 0:
            raise InputError("class-conditional p-values need each image's predicted class, which the scoring worker "
                             "processes do not return: serve with --workers 0")
        if not isinstance(model, Detector):
            detector = with_classes(model, detector, threads, settings.engine)
    decisions = Decisions(detector, rule, None if fdr_state is None else Path(fdr_state))
    size, channels = model_geometry(detector)
    settings = replace(settings, workers=n_workers)
    settings = replace(settings, batch_wait_s=settings.wait_s)  # the wait in effect, as /model reports it
    workers: list[WorkerScorer] = []
    in_process = _with_classes(detector) if rule.class_conditional else detector.score
    batcher = MicroBatcher([in_process] if n_workers == 0 else [_slot(workers, i) for i in range(n_workers)],
                           settings.max_batch, settings.wait_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        per_worker = worker_threads(threads, n_workers)
        try:
            started = await asyncio.gather(*(run_in_threadpool(WorkerScorer, model, per_worker, identity, settings.engine)
                                             for _ in range(n_workers)), return_exceptions=True)
            workers.extend(w for w in started if isinstance(w, WorkerScorer))
            for failed in (e for e in started if isinstance(e, BaseException)):
                raise failed
            batcher.start()
            yield
        finally:
            await batcher.stop()
            while workers:
                workers.pop().close()

    app = FastAPI(title="oodscope", description="Out-of-distribution scores of images: higher = more out-of-distribution.",
                  lifespan=lifespan)
    if key is not None:
        app.add_middleware(BearerAuth, api_key=key)
    app.add_middleware(AccessLog)  # added last: the outermost, so that refused requests are logged too
    decision = rule.record()
    app.state.decision = decision  # the rule in force (oodscope serve names it when it starts)

    @app.exception_handler(StarletteHTTPException)
    async def noted(request: Request, exc: StarletteHTTPException) -> Response:
        note(request.scope, error=exc.detail)
        return await http_exception_handler(request, exc)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the model is loaded."""
        return {"status": "ok", **identity}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        """The model: method, weights' SHA-256, the precision it scores in and the engine that runs it,
        settings, input size and channels, threshold and its rule, the decision rule in force and the
        guarantee it states, the calibration it reads, and an online rule's position."""
        engine = workers[0].engine if workers else engine_of(detector)
        return {**identity, "precision": detector.precision, "engine": engine, "image_size": list(size), "channels": channels,
                "threshold": detector.threshold,
                "threshold_rule": public_rule(detector), "config": detector.config,
                "fitted": {k: v for k, v in detector.fitted.items() if k in ("size", "channels", "mean", "std")},
                "trained_on": detector.fitted.get("trained_on"),
                **decisions.describe(), "limits": asdict(settings)}

    @app.post("/score", response_class=JSONResponse)
    async def score(request: Request) -> JSONResponse:
        """Scores, conformal p-values and verdicts of the images sent (multipart files or JSON
        ``{"images": [...]}``), in order, and the decision rule that gave the verdicts."""
        body = await _body(request, settings.max_upload_bytes)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            names, images = _json_images(body, size, channels)
            note(request.scope, images=len(names))
            if len(names) > settings.max_images:
                raise _fail(413, f"{len(names)} images exceed the limit of {settings.max_images} per request")
        elif kind == "multipart/form-data":
            names, images = await _multipart_images(request, body, settings, size, channels)
            note(request.scope, images=len(names))
        else:
            raise _fail(415, f"unsupported content type {kind or '(none)'!r}: send multipart/form-data files "
                             "or application/json")
        try:
            scored = await batcher.score(images)
            scores, classes = (scored, None) if not rule.class_conditional else (scored[:, 0], scored[:, 1].astype(np.int64))
            if decisions.decider.online is None:
                p, flags, position = decisions.decide(scores, classes)
            else:
                p, flags, position = await run_in_threadpool(decisions.decide, scores, classes)
        except (InputError, DataError) as e:
            raise _fail(422, str(e)) from None
        results = []
        for i, (n, s) in enumerate(zip(names, scores)):
            row: dict[str, Any] = {"index": i, "name": n, "score": float(s),
                                   "p_value": None if p is None else float(p[i]),
                                   "verdict": None if flags is None else ("ood" if flags[i] else "in")}
            if classes is not None:
                row["predicted_class"] = int(classes[i])
            results.append(row)
        out: dict[str, Any] = {"model": identity, "threshold": detector.threshold, "decision": decision,
                               "results": results}
        if position is not None:
            out["online"] = position
        return JSONResponse(out)

    return app
