"""``graft serve RUN`` for a recommendation run: the items its model recommends, over HTTP.

- ``POST /recommend``: JSON ``{"user": "42"}`` (a user the model was fitted on),
  ``{"liked": ["1", "50"]}`` (a new user from items they liked; with ``user`` too, that
  user's history and the liked items) or ``{"similar_to": "1"}`` (the items most like one
  item); optional ``top_k`` (1 to :data:`MAX_TOP_K`; default ``graft serve --top-k``).
- ``GET /recommend?user=42&top_k=5``, ``?liked=1,50``, ``?similar_to=1``: the same.
- The answer is ``{"items": [{"item", "score", "text"}, ...]}``, best first: what
  ``graft recommend --json`` prints, from the model's own recommender (the kind's
  :class:`~graft.tasks.capabilities.Recommends`, behind ``graft.load(RUN).recommend``).
- An unknown user or item: 404 naming it; a malformed request or ``top_k``: 400 naming the
  field (415 for a body that is not JSON).
- ``GET /health``, ``GET /metrics`` and the page at ``GET /`` (a user box, a liked-items box,
  a "similar to" box and the items found), as for a model.

Each request is one user's (or item's) scores over the catalogue: requests are answered one
after another in the model's thread, through the model service's queue (503 when full, 504
past the timeout: :mod:`.batching`). The token and the per-client limit are the model
service's (:mod:`.auth`, :mod:`.limits`).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request

from graft.errors import GraftError
from graft.serve.app import TIMEOUT_SECONDS, admit, answer, engine_name, guard, service_app
from graft.serve.batching import MAX_BATCH, QUEUE_LIMIT, MicroBatcher
from graft.serve.inputs import MAX_UPLOAD_BYTES, RequestError, json_object, read_body
from graft.serve.limits import MAX_CLIENT_REQUESTS, MAX_TEXT_CHARS
from graft.serve.metrics import ServeMetrics
from graft.serve.page import FETCH_WITH_TOKEN
from graft.tasks.capabilities import Recommends, recommender_of

#: The most items one request may ask for.
MAX_TOP_K = 100
#: The most liked items one request may name.
MAX_LIKED = 1000
#: The fields of a request.
FIELDS = ("user", "liked", "similar_to", "top_k")
#: What a request holds, said when it holds something else.
_SEND = 'send JSON {"user": "42"}, {"liked": ["1", "50"]} or {"similar_to": "1"}'
_HINT = f"this service recommends: {_SEND}"


def recommends(model: Any) -> bool:
    """Whether ``model`` (a loaded run) is of a kind that recommends."""
    return isinstance(getattr(model, "fitted_task_", None), Recommends)


@dataclass(frozen=True)
class Query:
    """One request: a known ``user`` and/or ``liked`` items, or ``similar_to`` one item."""

    user: str | None = None
    liked: tuple[str, ...] = ()
    similar_to: str | None = None
    top_k: int = 10


@dataclass(frozen=True)
class Refusal:
    """A query the model refused (an unknown user or item), with its one-line message."""

    message: str


class RecommendationService:
    """A recommendation run opened for serving: the loaded model and its recommender, made
    once (``graft.load(RUN).recommend`` makes one a call).

    Attributes:
        model: the loaded run.
        recommender: the kind's recommender of it (:func:`graft.tasks.capabilities.recommender_of`).
    """

    def __init__(self, model: Any):
        self.model = model
        self.recommender = recommender_of(model)

    def recommend(self, query: Query) -> list[dict] | Refusal:
        """The items of ``query`` (best first), or why the model refused it."""
        try:
            return self.recommender.recommend(
                query.user, list(query.liked) or None, query.top_k, query.similar_to
            )
        except GraftError as error:
            return Refusal(str(error))

    def answer_all(self, queries: list[Query]) -> list:
        """Each query's items or refusal (the batcher's call, in the model's thread)."""
        return [self.recommend(query) for query in queries]

    def describe(self) -> dict:
        """What ``/health`` and the page say of the service."""
        run = getattr(self.model, "run_dir_", None)
        return {
            "run": None if run is None else str(run),
            "model": self.model.model_,
            "task": self.model.task_,
            "engine": engine_name(self.model),
            "items": len(self.model.classes_),
        }


def create_recommendation_app(
    service: RecommendationService,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_batch: int = MAX_BATCH,
    top_k: int = 10,
    queue_limit: int = QUEUE_LIMIT,
    timeout: float = TIMEOUT_SECONDS,
    token: str | None = None,
    max_client_requests: int = MAX_CLIENT_REQUESTS,
    max_text_chars: int = MAX_TEXT_CHARS,
    **unused: Any,
) -> FastAPI:
    """The FastAPI application answering ``/recommend`` from ``service`` (see the module
    docstring); ``top_k``: the items of a request that asks for no number (a request may ask
    for 1 to :data:`MAX_TOP_K`, or to ``top_k`` when larger); ``unused``: the model service's
    limits that ids have no use for (pixels, audio seconds)."""
    metrics = ServeMetrics(max_batch)
    batcher = MicroBatcher(
        service.answer_all, max_batch=max_batch, queue_limit=queue_limit, observe=metrics.batch
    )
    describe = service.describe()
    app = service_app(batcher, metrics, describe, _page(describe), timeout)
    guard(app, batcher, metrics, token, max_client_requests)
    read = QueryReader(top_k, max(MAX_TOP_K, top_k), max_text_chars)

    async def respond(query: Query, arrived: float) -> dict:
        left = timeout - (time.monotonic() - arrived)
        found = (await answer(batcher, [query], left, timeout))[0]
        if isinstance(found, Refusal):
            raise RequestError(404, found.message)
        return {"items": found}

    @app.post("/recommend")
    async def recommend(request: Request):
        arrived = time.monotonic()
        admit(batcher)
        body = await read_body(request, max_upload_bytes)
        payload = json_object(body, request.headers.get("content-type", ""), _HINT)
        return await respond(read(payload), arrived)

    @app.get("/recommend")
    async def recommend_get(request: Request):
        arrived = time.monotonic()
        admit(batcher)
        payload = {k: v for k, v in request.query_params.items() if v.strip()}
        k = payload.get("top_k", "")
        if k.isascii() and k.isdecimal() and len(k) <= 6:
            payload["top_k"] = int(k)
        return await respond(read(payload), arrived)

    return app


@dataclass(frozen=True)
class QueryReader:
    """Reads a request's JSON object (or query parameters) as a :class:`Query`, refusing
    (400, 413) what is not one, by the field: ``default_k`` items unless it asks for 1 to
    ``most_k``; ids of at most ``id_chars`` characters."""

    default_k: int
    most_k: int
    id_chars: int

    def __call__(self, payload: dict) -> Query:
        unknown = [name for name in payload if name not in FIELDS]
        if unknown:
            raise RequestError(400, f"unknown field {unknown[0][:40]!r}: {_SEND}")
        user = self.one_id(payload.get("user"), "user")
        similar_to = self.one_id(payload.get("similar_to"), "similar_to")
        liked = self.liked(payload.get("liked"))
        if similar_to is not None and (user is not None or liked):
            raise RequestError(
                400, "similar_to ranks the items like one item: send no user nor liked"
            )
        if similar_to is None and user is None and not liked:
            raise RequestError(400, f"nothing to recommend from: {_SEND}")
        return Query(user, liked, similar_to, self.top_k(payload.get("top_k", self.default_k)))

    def one_id(self, value: Any, field: str) -> str | None:
        """An id (a string, or an integer written as one); None when absent."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise RequestError(400, f"{field} must be an id (a string), got {str(value)[:40]!r}")
        if len(value) > self.id_chars:
            raise RequestError(
                413, f"{field} has {len(value):,} characters; the limit is {self.id_chars:,}"
            )
        return value.strip()

    def liked(self, value: Any) -> tuple[str, ...]:
        """The liked items: a list of ids (maybe empty), or one string of comma-separated
        ids."""
        if value is None:
            return ()
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise RequestError(400, 'liked must be a list of item ids, e.g. ["1", "50"]')
        if len(value) > MAX_LIKED:
            raise RequestError(413, f"liked names {len(value):,} items; the limit is {MAX_LIKED:,}")
        return tuple(self.one_id(item, "liked") for item in value)

    def top_k(self, value: Any) -> int:
        """How many items: an integer from 1 to ``most_k``."""
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self.most_k:
            raise RequestError(
                400, f"top_k must be an integer from 1 to {self.most_k}, got {str(value)[:20]!r}"
            )
        return value


def _page(describe: dict) -> str:
    """A user box, a liked-items box and a "similar to" box that ask ``/recommend``, and the
    items found."""
    title = html.escape(f"graft: recommendations from {describe['run'] or describe['model']}")
    count = html.escape(f"{describe['items']:,} items")
    page = _PAGE.replace("{{FETCH_WITH_TOKEN}}", FETCH_WITH_TOKEN)
    return page.replace("{{TITLE}}", title).replace("{{COUNT}}", count)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; color: #222; }
label { display: block; margin: 0.4rem 0; } input { font: inherit; padding: 0.2rem; }
li { margin: 0.6rem 0; } .score { color: #3a7bd5; font-variant-numeric: tabular-nums; }
.item { font-weight: 600; } #error { color: #b00; }
</style></head><body>
<h1>{{TITLE}}</h1><p>{{COUNT}} in the catalogue.</p>
<form id="form">
<label>User id <input id="user" placeholder="42" autofocus></label>
<label>Liked items <input id="liked" placeholder="1, 50 (comma separated)"></label>
<label>or similar to item <input id="similar_to" placeholder="1"></label>
<label>How many <input id="top_k" type="number" min="1" max="100" value="10"></label>
<button>Recommend</button></form>
<div id="error" role="alert"></div><ol id="results" aria-live="polite"></ol>
<script>
{{FETCH_WITH_TOKEN}}
function query() {
  const value = (id) => document.getElementById(id).value.trim();
  const body = {top_k: Number(value("top_k")) || 10};
  if (value("user")) body.user = value("user");
  const liked = value("liked").split(",").map((s) => s.trim()).filter((s) => s);
  if (liked.length) body.liked = liked;
  if (value("similar_to")) body.similar_to = value("similar_to");
  return JSON.stringify(body);
}
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const headers = {"Content-Type": "application/json"};
  const reply = await fetchWithToken("recommend", {method: "POST", headers, body: query()});
  const found = await reply.json();
  document.getElementById("error").textContent = reply.ok ? "" : found.error;
  const list = document.getElementById("results");
  list.replaceChildren();
  for (const hit of (reply.ok ? found.items : [])) {
    const row = document.createElement("li");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3) + " ";
    const item = document.createElement("span");
    item.className = "item";
    item.textContent = hit.item;
    row.append(score, item, document.createTextNode(": " + hit.text.slice(0, 300)));
    list.append(row);
  }
});
</script></body></html>
"""
