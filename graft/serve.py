"""``graft serve RUN``: an HTTP service and a web page for a trained model (FastAPI, uvicorn).

- ``POST /predict``: for an image or audio model, a multipart upload of one or more files
  (field ``file`` or ``files``; audio in any format :mod:`graft.data.audio` decodes); for a
  text model, JSON ``{"text": "..."}`` or ``{"texts": [...]}``.
  Optional ``top_k`` (query parameter, or a JSON field for text). The answer is
  ``{"predictions": [[{"label": ..., "probability": ...}, ...], ...]}``, one list per input,
  the ``top_k`` most probable first (multilabel: each label's own probability; regression:
  ``{"value": ...}``; tagging: ``{"text": ..., "entities": [{"text", "label", "start",
  "end", "score"}, ...]}``, which the page highlights in the text; detection:
  ``{"detections": [{"label", "score", "box": [x1, y1, x2, y2]}, ...]}``, which the page
  draws on the dropped image; semantic segmentation: ``{"mask": "data:image/png;base64,...",
  "classes", "colors", "pixels": {class: share}, "width", "height"}``, the mask a palette PNG
  of class indices at the image's size, which the page lays over the dropped image).
- ``GET /health``: the model and whether the service answers.
- ``GET /``: a page where a person drops an image or an audio clip (and can play it back) or
  types a text and sees the answer as bars (inline script and style: nothing is fetched from
  elsewhere).

Requests are batched under load: the inputs of concurrent requests that arrive within
:data:`BATCH_WAIT_SECONDS` of each other are merged, up to ``max_batch`` inputs, into one call
of the model in a worker thread (:class:`MicroBatcher`); if a merged call fails, each request
is answered on its own, so one bad input cannot fail its neighbours. Bad requests get a 4xx
answer with a message, never a 500: a body over ``max_upload_bytes`` or more than
:data:`MAX_FILES` files or :data:`MAX_TEXTS` texts (413), a content type the model does not
read (415), an image or audio file that cannot be decoded or an image over the pixel limit,
malformed JSON or a bad ``top_k`` (400). Texts are only ever
texts: a request can never make the service read a file on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from graft.data.audio import check_audio, is_audio_file
from graft.data.images import UnreadableImage, open_rgb

#: Upload limit of one request, over all its files.
MAX_UPLOAD_BYTES = 10 * 2**20
#: How long an input waits for others to share its batch.
BATCH_WAIT_SECONDS = 0.01
MAX_BATCH = 32
MAX_TEXTS = 256
MAX_FILES = 64


class RequestError(Exception):
    """A request the service refuses, with its HTTP status and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class _Job:
    items: list[str]
    future: asyncio.Future


@dataclass
class MicroBatcher:
    """Collects the inputs of concurrent requests into batches for one ``predict`` call.

    Attributes:
        predict: answers a list of inputs, one answer each (runs in a worker thread).
        max_batch: the most inputs in one call.
        wait: how long the first input of a batch waits for more.
        batches, inputs: how many calls and inputs so far (for /health and tests).
    """

    predict: Any
    max_batch: int = MAX_BATCH
    wait: float = BATCH_WAIT_SECONDS
    batches: int = 0
    inputs: int = 0
    _queue: asyncio.Queue | None = field(default=None, repr=False)

    async def submit(self, items: list[str]) -> list:
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(items, future))
        return await future

    async def run(self) -> None:
        self._queue = asyncio.Queue()
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].items)
            deadline = time.monotonic() + self.wait
            while size < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout=left)
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job.items)
            await self._answer(jobs)

    async def _answer(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            answers = await asyncio.to_thread(self.predict, items)
        except Exception as error:  # noqa: BLE001  (handed to the requests that waited)
            if len(jobs) > 1:  # answer each on its own: only the culprit fails
                for job in jobs:
                    await self._answer([job])
                return
            if not jobs[0].future.done():
                jobs[0].future.set_exception(error)
            return
        self.batches, self.inputs = self.batches + 1, self.inputs + len(items)
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(answers[start : start + len(job.items)])
            start += len(job.items)


def answers(model, items: list[str]) -> list:
    """Each input's full answer (every class with its probability, most probable first; a
    regression model's value), which each request then cuts to its ``top_k``."""
    return model.served_answers(items, top_k=len(model.classes_))


def create_app(
    model,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_batch: int = MAX_BATCH,
    top_k: int = 5,
):
    """The FastAPI application serving fitted ``model``."""
    model.fitted_task_.check_servable()
    modality = model.backbone_.modality
    batcher = MicroBatcher(lambda items: answers(model, items), max_batch=max_batch)
    uploads = tempfile.TemporaryDirectory(prefix="graft-serve-")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        worker = asyncio.create_task(batcher.run())
        await asyncio.sleep(0)  # let it make its queue
        try:
            yield
        finally:
            worker.cancel()
            uploads.cleanup()

    app = FastAPI(title="graft", lifespan=lifespan)
    app.state.batcher = batcher
    describe = {
        "model": model.model_,
        "modality": modality,
        "task": model.task_,
        "classes": list(model.classes_),
    }

    @app.exception_handler(RequestError)
    async def refuse(request: Request, error: RequestError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.get("/health")
    async def health():
        return {"status": "ok", **describe, "batches": batcher.batches, "inputs": batcher.inputs}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(_page(describe))

    @app.post("/predict")
    async def predict(request: Request):
        body = await _body(request, max_upload_bytes)
        kind = request.headers.get("content-type", "")
        k = _top_k(request, top_k)
        if modality in UPLOADED:
            items = await _uploads(request, kind, Path(uploads.name), modality)
        else:
            items, k = _texts(body, kind, k)
        try:
            found = await batcher.submit(items)
        finally:
            if modality in UPLOADED:
                for item in items:
                    Path(item).unlink(missing_ok=True)
        found = [row[:k] if isinstance(row, list) else row for row in found]
        return {"predictions": found}

    return app


async def _body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"the request is over the limit of {limit:,} bytes")
    request._body = bytes(body)  # starlette reads form() and json() from here
    return request._body


def _top_k(request, default: int) -> int:
    value = request.query_params.get("top_k", str(default))
    if not (value.isascii() and value.isdecimal() and len(value) <= 6) or int(value) < 1:
        raise RequestError(400, f"top_k must be a positive integer, got {value[:20]!r}")
    return int(value)


def _check_image(path: str) -> str | None:
    """Why the file at ``path`` is not a readable image (None when it is one)."""
    try:
        open_rgb(path)
    except UnreadableImage as error:
        return str(error)
    return None


def _check_audio(path: str) -> str | None:
    """Why the file at ``path`` is not a readable audio file (None when it is one)."""
    return check_audio([path])[1].get(0)


#: The modalities whose inputs are uploaded files: what they are called and how each upload
#: is checked to decode (off the event loop) before it reaches the model.
UPLOADED = {"image": ("image", _check_image), "audio": ("audio file", _check_audio)}


async def _uploads(request, kind: str, folder: Path, modality: str) -> list[str]:
    """The uploaded files, each checked to decode as the model's modality (an image, an
    audio file), saved to ``folder`` (audio keeps its extension, which names its format)."""
    noun, check = UPLOADED[modality]
    if not kind.startswith("multipart/form-data"):
        raise RequestError(
            415,
            f"this model reads {noun}s: send them as multipart/form-data (field 'file'), "
            f"not {kind or 'no content type'}",
        )
    try:
        form = await request.form(max_files=MAX_FILES)
    except Exception as error:  # noqa: BLE001  (starlette's multipart parser: a bad body)
        status = 413 if "Too many files" in str(error) else 400
        raise RequestError(status, f"the multipart body cannot be read ({error})") from None
    files = [v for key in ("file", "files") for v in form.getlist(key) if hasattr(v, "read")]
    if not files:
        raise RequestError(400, f"no {noun} in the request: upload it in the field 'file'")
    paths = []
    try:
        for upload in files:
            content = await upload.read()
            name = Path(upload.filename or "")
            suffix = name.suffix.lower() if is_audio_file(name) else ".upload"
            handle = tempfile.NamedTemporaryFile(dir=folder, suffix=suffix, delete=False)
            with handle:
                handle.write(content)
            paths.append(handle.name)
            problem = await asyncio.to_thread(check, handle.name)  # off the event loop
            if problem is not None:
                reason = problem.replace(handle.name, upload.filename or "the upload")
                message = f"{upload.filename}: not a readable {noun} ({reason})"
                raise RequestError(400, message)
    except BaseException:  # a refusal, a full disk, a cancelled request: no file left behind
        for path in paths:
            Path(path).unlink(missing_ok=True)
        raise
    return paths


def _texts(body: bytes, kind: str, default_k: int) -> tuple[list[str], int]:
    if not kind.startswith("application/json"):
        raise RequestError(
            415,
            'this model reads text: send JSON {"text": "..."} or {"texts": [...]}, '
            f"not {kind or 'no content type'}",
        )
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # bad JSON or UTF-8, absurd numbers
        raise RequestError(400, f"the body is not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise RequestError(400, 'send a JSON object: {"text": "..."} or {"texts": [...]}')
    texts = payload.get("texts", [payload["text"]] if "text" in payload else None)
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, 'send {"text": "a string"} or {"texts": ["one or more strings"]}')
    if len(texts) > MAX_TEXTS:
        raise RequestError(413, f"{len(texts)} texts in one request; the limit is {MAX_TEXTS}")
    k = payload.get("top_k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise RequestError(400, f"top_k must be a positive integer, got {k!r}")
    return texts, k


class BackgroundServer:
    """uvicorn serving ``app`` on a free loopback port in a thread, as a context manager (for
    tests, benchmarks and notebooks): ``with BackgroundServer(create_app(model)) as live:``
    then requests to ``live.url``."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port = probe.getsockname()[1]
        self.host = host
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """Load the run and serve it until interrupted."""
    import uvicorn

    from graft.api import load

    uvicorn.run(create_app(load(run), **options), host=host, port=port, log_level="info")


def _page(describe: dict) -> str:
    """The web page: a drop zone (images, audio clips) or a text box (text), and the answer
    as bars."""
    noun, accept = {"image": ("an image", "image/*"), "audio": ("an audio clip", "audio/*")}.get(
        describe["modality"], (None, None)
    )
    control = (
        f'<label id="drop" class="drop">Drop {noun} here, or '
        f'<input id="file" type="file" accept="{accept}"></label>'
        if noun
        else '<textarea id="text" rows="5" placeholder="Type a text"></textarea>'
        '<button id="send">Predict</button>'
    )
    model = json.dumps(describe).replace("<", "\\u003c")  # no "</script>" from a label
    title = html.escape(f"graft: {describe['model']} ({describe['task']})")
    return (
        _PAGE.replace("{{CONTROL}}", control)
        .replace("{{MODEL}}", model)
        .replace("{{TITLE}}", title)
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; color: #222; }
.drop { display: block; border: 2px dashed #888; padding: 2rem; text-align: center; }
.drop.over { background: #eef; }
textarea { width: 100%; font: inherit; }
#preview { max-width: 12rem; display: block; margin: 1rem 0; }
.bar { display: flex; align-items: center; gap: 0.5rem; margin: 0.3rem 0; }
.bar .label { width: 10rem; overflow: hidden; text-overflow: ellipsis; }
.bar .track { flex: 1; background: #eee; height: 1.1rem; }
.bar .fill { background: #3a7bd5; height: 100%; }
.bar .value { width: 4.5rem; text-align: right; font-variant-numeric: tabular-nums; }
#error { color: #b00; }
.swatch { display: inline-block; width: 0.9rem; height: 0.9rem; margin: 0 0.3rem 0 0.8rem;
  vertical-align: middle; border: 1px solid #888; }
.tagged { line-height: 2.2; white-space: pre-wrap; }
.tagged mark { background: #dbe7fb; border-radius: 0.2rem; padding: 0.1rem 0.2rem; }
.tagged sup { font-size: 0.65rem; font-weight: bold; color: #3a7bd5; margin-left: 0.2rem; }
</style></head><body>
<h1>{{TITLE}}</h1>
{{CONTROL}}
<img id="preview" alt="" hidden>
<audio id="listen" controls hidden></audio>
<div id="error" role="alert"></div>
<div id="result" aria-live="polite"></div>
<script>
const MODEL = {{MODEL}};
const result = document.getElementById("result"), error = document.getElementById("error");
function showEntities(answer) {
  // entities as spans of the text, highlighted in place (offsets count code points)
  const chars = Array.from(answer.text), line = document.createElement("p");
  line.className = "tagged";
  let at = 0;
  for (const entity of answer.entities) {
    line.append(chars.slice(at, entity.start).join(""));
    const mark = document.createElement("mark"), tag = document.createElement("sup");
    mark.title = entity.label + " " + (100 * entity.score).toFixed(1) + "%";
    mark.textContent = chars.slice(entity.start, entity.end).join("");
    tag.textContent = entity.label; mark.append(tag); line.append(mark); at = entity.end;
  }
  line.append(chars.slice(at).join(""));
  if (!answer.entities.length) line.append(" (no entity found)");
  result.append(line);
}
function showBoxes(answer) {
  // a detector's boxes drawn over the dropped image (pixels of the image as it was sent)
  const preview = document.getElementById("preview"), canvas = document.createElement("canvas");
  canvas.id = "boxes";
  const draw = () => {
    const scale = Math.min(1, 640 / preview.naturalWidth), pen = canvas.getContext("2d");
    canvas.width = preview.naturalWidth * scale; canvas.height = preview.naturalHeight * scale;
    pen.drawImage(preview, 0, 0, canvas.width, canvas.height);
    pen.lineWidth = 2; pen.font = "13px system-ui, sans-serif";
    for (const found of answer.detections) {
      const [x1, y1, x2, y2] = found.box.map((v) => v * scale);
      const text = found.label + " " + (100 * found.score).toFixed(0) + "%";
      const top = Math.max(0, y1 - 16);
      pen.strokeStyle = pen.fillStyle = "#dc1e1e"; pen.strokeRect(x1, y1, x2 - x1, y2 - y1);
      pen.fillRect(x1, top, pen.measureText(text).width + 6, 16);
      pen.fillStyle = "#fff"; pen.fillText(text, x1 + 3, top + 12);
    }
  };
  if (preview.complete && preview.naturalWidth) draw();
  else preview.addEventListener("load", draw, { once: true });
  const note = document.createElement("p");
  note.textContent = answer.detections.length + " object(s) found";
  result.append(canvas, note);
}
function showMask(answer) {
  // a segmentation's mask (a PNG, background transparent) laid over the dropped image
  const preview = document.getElementById("preview"), canvas = document.createElement("canvas");
  const mask = new Image();
  canvas.id = "mask";
  let waiting = 2;
  const ready = () => {
    if (--waiting > 0) return;
    const scale = Math.min(1, 640 / preview.naturalWidth), pen = canvas.getContext("2d");
    canvas.width = preview.naturalWidth * scale; canvas.height = preview.naturalHeight * scale;
    pen.drawImage(preview, 0, 0, canvas.width, canvas.height);
    pen.globalAlpha = 0.5; pen.imageSmoothingEnabled = false;
    pen.drawImage(mask, 0, 0, canvas.width, canvas.height);
  };
  mask.addEventListener("load", ready, { once: true }); mask.src = answer.mask;
  if (preview.complete && preview.naturalWidth) ready();
  else preview.addEventListener("load", ready, { once: true });
  const legend = document.createElement("p");
  for (const [name, share] of Object.entries(answer.pixels)) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = answer.colors[answer.classes.indexOf(name)];
    legend.append(swatch, name + " " + (100 * share).toFixed(1) + "%");
  }
  result.append(canvas, legend);
}
function show(answer) {
  result.replaceChildren();
  if (!Array.isArray(answer) && "entities" in answer) { showEntities(answer); return; }
  if (!Array.isArray(answer) && "detections" in answer) { showBoxes(answer); return; }
  if (!Array.isArray(answer) && "mask" in answer) { showMask(answer); return; }
  for (const row of answer) {
    const bar = document.createElement("div"); bar.className = "bar";
    const label = document.createElement("span"); label.className = "label";
    const track = document.createElement("span"); track.className = "track";
    const fill = document.createElement("span"); fill.className = "fill";
    const value = document.createElement("span"); value.className = "value";
    if ("value" in row) { label.textContent = "value"; value.textContent = row.value.toFixed(4); }
    else {
      label.textContent = row.label; fill.style.width = (100 * row.probability) + "%";
      value.textContent = (100 * row.probability).toFixed(1) + "%";
    }
    fill.style.display = "block"; track.append(fill); bar.append(label, track, value);
    result.append(bar);
  }
}
async function ask(request) {
  error.textContent = ""; result.textContent = "…";
  const response = await fetch("predict?top_k=5", request);
  const body = await response.json();
  if (!response.ok) {
    result.textContent = ""; error.textContent = body.error || body.detail; return;
  }
  show(body.predictions[0]);
}
if (MODEL.modality === "image" || MODEL.modality === "audio") {
  const drop = document.getElementById("drop"), input = document.getElementById("file");
  const send = (file) => {
    const preview = document.getElementById(MODEL.modality === "image" ? "preview" : "listen");
    preview.src = URL.createObjectURL(file); preview.hidden = false;
    const form = new FormData(); form.append("file", file);
    ask({ method: "POST", body: form });
  };
  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
  });
} else {
  document.getElementById("send").addEventListener("click", () => ask({
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text: document.getElementById("text").value, top_k: 5 }),
  }));
}
</script></body></html>
"""
