"""``graft serve RUN``: an HTTP service and a web page for a trained model (FastAPI, uvicorn).

- ``POST /predict``: for an image or audio model, a multipart upload of one or more files
  (field ``file`` or ``files``; audio in any format :mod:`graft.data.audio` decodes); for a
  text model, JSON ``{"text": "..."}`` or ``{"texts": [...]}``.
  Optional ``top_k`` (query parameter, or a JSON field for text). The answer is
  ``{"predictions": [[{"label": ..., "probability": ...}, ...], ...]}``, one list per input,
  the ``top_k`` most probable first (multilabel: each label's own probability, its
  ``threshold`` and whether it is ``predicted``; every predicted label is answered whatever
  ``top_k``; regression: ``{"value": ...}``; tagging: ``{"text": ..., "entities": [{"text",
  "label", "start", "end", "score"}, ...]}``, which the page highlights in the text; detection:
  ``{"detections": [{"label", "score", "box": [x1, y1, x2, y2]}, ...]}``, which the page
  draws on the dropped image; semantic segmentation: ``{"mask": "data:image/png;base64,...",
  "classes", "colors", "pixels": {class: share}, "width", "height"}``, the mask a palette PNG
  of class indices at the image's size, which the page lays over the dropped image).
- ``GET /health``: the model, the engine that answers, and whether the service answers.
- ``GET /metrics``: requests, latency, batch sizes, queue depth and errors in Prometheus text
  format (:mod:`.metrics`).
- ``GET /``: a page where a person drops an image or an audio clip (and can play it back) or
  types a text and sees the answer (:mod:`.page`).

Under load (:mod:`.batching`): the inputs of concurrent requests are merged into batches of at
most ``max_batch`` inputs, and a larger request is split into several; at most ``queue_limit``
requests wait, one more is answered 503 with ``Retry-After``; a request without its answer
after ``timeout`` seconds is answered 504. Bad requests get a 4xx answer with a message, never
a 500 (:mod:`.inputs`). Shutdown finishes the accepted requests (:mod:`.server`).

The modules: :mod:`.app` (the FastAPI application), :mod:`.batching`, :mod:`.inputs` (what a
request holds), :mod:`.metrics`, :mod:`.page`, :mod:`.server` (uvicorn: one process, several
workers, or a background thread).
"""

import importlib

#: Where each name of the package is defined: imported when first used, so that the CLI can
#: read :mod:`graft.serve.limits`' defaults without importing FastAPI or torch.
_WHERE = {
    "TIMEOUT_SECONDS": "app",
    "create_app": "app",
    "MAX_BATCH": "batching",
    "QUEUE_LIMIT": "batching",
    "MicroBatcher": "batching",
    "QueueFull": "batching",
    "MAX_UPLOAD_BYTES": "inputs",
    "RequestError": "inputs",
    "BackgroundServer": "server",
    "serve": "server",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = [
    "MAX_BATCH",
    "MAX_UPLOAD_BYTES",
    "QUEUE_LIMIT",
    "TIMEOUT_SECONDS",
    "BackgroundServer",
    "MicroBatcher",
    "QueueFull",
    "RequestError",
    "create_app",
    "serve",
]
