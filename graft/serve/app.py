"""The FastAPI application of ``graft serve``: its routes, its lifespan (the batcher started
with it and drained at shutdown), the timeout and the refusals of a request, and the metrics
counted around every request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from graft.serve.auth import BearerAuth
from graft.serve.batching import MAX_BATCH, QUEUE_LIMIT, MicroBatcher, QueueFull
from graft.serve.inputs import (
    MAX_UPLOAD_BYTES,
    UPLOADED,
    RequestError,
    read_body,
    read_records,
    read_texts,
    read_top_k,
    read_uploads,
    remove_uploads,
)
from graft.serve.limits import (
    MAX_CLIENT_REQUESTS,
    MAX_REQUEST_AUDIO_SECONDS,
    MAX_REQUEST_PIXELS,
    MAX_TEXT_CHARS,
    ClientLimit,
    RequestLimits,
)
from graft.serve.metrics import ServeMetrics
from graft.serve.page import render_page
from graft.tasks.capabilities import check_servable

#: The status counted for a request whose client went away before its answer (nginx's).
CLIENT_CLOSED = 499
#: Seconds a request may wait for its answer before it is answered 504.
TIMEOUT_SECONDS = 30.0

log = logging.getLogger("graft.serve")


def engine_name(model: Any) -> str:
    """Which engine answers for ``model``: ``torch``, or the exported model's format."""
    named = getattr(model, "engine_name_", None)
    if named:
        return str(named)
    engine = getattr(model, "engine_", None)
    return "torch" if engine is None else str(getattr(engine, "format", type(engine).__name__))


def full_answers(model: Any, items: list) -> list:
    """Each input's full answer (every class with its probability, most probable first;
    multilabel: every label with its threshold and whether it is predicted; a regression
    model's value), which each request then cuts to its ``top_k`` (:func:`cut`)."""
    return model.served_answers(items, top_k=len(model.classes_))


def cut(answer: Any, k: int) -> Any:
    """An answer cut to its ``k`` most probable classes, keeping every predicted label of a
    multi-label answer (``"predicted": true``) however many there are."""
    if not isinstance(answer, list):
        return answer
    return [row for i, row in enumerate(answer) if i < k or row.get("predicted")]


def create_app(
    model: Any,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_batch: int = MAX_BATCH,
    top_k: int = 5,
    queue_limit: int = QUEUE_LIMIT,
    timeout: float = TIMEOUT_SECONDS,
    token: str | None = None,
    max_client_requests: int = MAX_CLIENT_REQUESTS,
    max_pixels: int = MAX_REQUEST_PIXELS,
    max_audio_seconds: float = MAX_REQUEST_AUDIO_SECONDS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> FastAPI:
    """The FastAPI application serving fitted ``model`` (see :mod:`graft.serve`); with a
    ``token``, every route but ``/health`` and ``/`` needs it (:mod:`graft.serve.auth`); the
    ``max_*`` limits as :mod:`graft.serve.limits` describes them."""
    check_servable(model.fitted_task_)
    modality = model.backbone_.modality
    fields = model.fitted_task_.request_fields
    clip = model.fitted_task_.clip_seconds  # a speech model's window (None: none)
    limits = RequestLimits(max_pixels, max_audio_seconds, max_text_chars, clip)
    metrics = ServeMetrics(max_batch)
    batcher = MicroBatcher(
        lambda items: full_answers(model, items),
        max_batch=max_batch,
        queue_limit=queue_limit,
        observe=metrics.batch,
    )
    uploads = tempfile.TemporaryDirectory(prefix="graft-serve-")
    describe = {
        "model": model.model_,
        "modality": modality,
        "task": model.task_,
        "engine": engine_name(model),
        "classes": list(model.classes_),
        **({"fields": list(fields)} if fields else {}),
        **({"clip_seconds": clip} if clip and modality == "audio" else {}),
    }
    app = service_app(batcher, metrics, describe, render_page(describe), timeout, uploads)
    guard(app, batcher, metrics, token, max_client_requests)

    @app.post("/predict")
    async def predict(request: Request):
        arrived = time.monotonic()
        admit(batcher)
        folder = Path(uploads.name)
        items, k = await _read(request, modality, folder, max_upload_bytes, top_k, limits, fields)
        try:
            inputs = await _prepared(model, items) if modality in UPLOADED else items
            left = timeout - (time.monotonic() - arrived)
            found = await answer(batcher, inputs, left, timeout)
        finally:
            if modality in UPLOADED:  # a text model's items are texts, never files
                remove_uploads(items)
        return {"predictions": [cut(answer, k) for answer in found]}

    return app


def service_app(
    batcher: MicroBatcher,
    metrics: ServeMetrics,
    describe: dict,
    page: str,
    timeout: float,
    uploads: tempfile.TemporaryDirectory | None = None,
) -> FastAPI:
    """The application every service shares: ``batcher`` running with it, refusals answered
    as JSON, ``GET /health`` (``describe`` and the batcher's counts), ``GET /metrics`` and
    the web ``page`` at ``GET /``; the caller adds its routes, then :func:`guard`."""
    app = FastAPI(title="graft", lifespan=_lifespan(batcher, uploads, timeout))
    app.state.batcher, app.state.metrics = batcher, metrics
    _refusals(app)

    @app.get("/health")
    async def health():
        counts = {"batches": batcher.batches, "inputs": batcher.inputs, "queue": batcher.depth}
        return {"status": "ok", **describe, **counts}

    @app.get("/metrics")
    async def prometheus():
        metrics.queue_depth.set(batcher.depth)
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/", response_class=HTMLResponse)
    async def home():
        return HTMLResponse(page)

    return app


def guard(
    app: FastAPI,
    batcher: MicroBatcher,
    metrics: ServeMetrics,
    token: str | None,
    max_client_requests: int,
) -> None:
    """The middlewares around every route: the token (``token`` None: none), the per-client
    limit (429, loopback exempt) and, outermost, the metrics, so a refusal is counted too."""
    if token is not None:
        app.add_middleware(BearerAuth, token=token)
    app.add_middleware(ClientLimit, limit=max_client_requests)
    app.add_middleware(MetricsMiddleware, metrics=metrics, batcher=batcher)


def _lifespan(batcher: MicroBatcher, uploads: tempfile.TemporaryDirectory | None, timeout: float):
    """The batcher runs while the application does; at shutdown (uvicorn has stopped
    accepting connections) it answers what it accepted, then the uploads folder goes."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        worker = asyncio.create_task(batcher.run())
        await asyncio.sleep(0)  # let it make its queue
        try:
            yield
        finally:
            await batcher.drain(timeout)
            worker.cancel()
            if uploads is not None:
                uploads.cleanup()

    return lifespan


async def _read(
    request: Request,
    modality: str,
    folder: Path,
    max_upload_bytes: int,
    top_k: int,
    limits: RequestLimits,
    fields: tuple[str, ...] = (),
) -> tuple[list, int]:
    """A ``/predict`` request's inputs (uploaded files saved in ``folder``, texts, or with
    ``fields`` objects of several texts) within ``limits``, and its ``top_k``."""
    body = await read_body(request, max_upload_bytes)
    kind = request.headers.get("content-type", "")
    k = read_top_k(request, top_k)
    if modality in UPLOADED:
        return await read_uploads(request, kind, folder, modality, limits), k
    if fields:
        return read_records(body, kind, k, fields, limits)
    return read_texts(body, kind, k, limits)


async def _prepared(model: Any, items: list) -> list:
    """The uploads made the model's inputs as they arrive, off the event loop and beside the
    model's thread, which then only batches and runs them
    (:meth:`graft.inference.Predictor.prepare`)."""
    try:
        return await asyncio.to_thread(model.prepare, items)
    except Exception as error:  # noqa: BLE001  (the uploads decoded: the model's failure)
        log.exception("the model could not prepare a request of %d input(s)", len(items))
        raise RequestError(500, f"the model failed on this request: {error}") from None


async def answer(batcher: MicroBatcher, items: list, left: float, timeout: float) -> list:
    """The batcher's answers of ``items`` within ``left`` seconds, or the request's refusal."""
    try:
        return await asyncio.wait_for(batcher.submit(items), timeout=max(left, 0.001))
    except QueueFull as full:
        raise busy(full) from None
    except TimeoutError:
        raise RequestError(
            504,
            f"no answer within the timeout of {timeout:g} s (the model is busy or slow); "
            "try again later, or serve with a longer --timeout",
        ) from None
    except Exception as error:  # noqa: BLE001  (the model failed on an accepted input)
        log.exception("the model failed on a request of %d input(s)", len(items))
        raise RequestError(500, f"the model failed on this request: {error}") from None


def admit(batcher: MicroBatcher) -> None:
    """Refuse (503) a request the batcher would not accept now, before its body is read: cheap
    under overload."""
    try:
        batcher.admit()
    except QueueFull as full:
        raise busy(full) from None


def busy(full: QueueFull) -> RequestError:
    """The 503 of a full queue, with its ``Retry-After``."""
    message = f"{full.message}: try again in {full.retry_after} s"
    return RequestError(503, message, headers={"Retry-After": str(full.retry_after)})


def _refusals(app: FastAPI) -> None:
    """Answer a :class:`RequestError` with its status, message and headers (JSON)."""

    @app.exception_handler(RequestError)
    async def refuse(request: Request, error: RequestError):
        content = {"error": error.message}
        return JSONResponse(content, status_code=error.status, headers=error.headers)


class MetricsMiddleware:
    """Counts every HTTP request's status and latency (a plain ASGI middleware, so a
    cancelled or streamed answer is counted too) and keeps the queue-depth gauge current."""

    def __init__(self, app, metrics: ServeMetrics, batcher: MicroBatcher):
        self.app, self.metrics, self.batcher = app, metrics, batcher

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500
        self.metrics.queue_depth.set(self.batcher.depth)

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.queue_depth.set(self.batcher.depth)
            await send(message)

        try:
            await self.app(scope, receive, send=sending)
        except asyncio.CancelledError:  # the client went away before its answer
            status = CLIENT_CLOSED
            raise
        finally:
            self.metrics.request(scope["path"], status, time.perf_counter() - began)
