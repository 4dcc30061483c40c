"""``graft serve INDEX``: the search service of an index folder that ``graft index`` wrote.

- ``POST /search``: JSON ``{"query": "..."}`` or ``{"queries": [...]}``, optional ``top_k``;
  ``GET /search?q=...&top_k=...`` for one query. The answer is ``{"results": [[{"id",
  "score", "text"}, ...], ...]}``, one list per query, best first.
- ``GET /health``, ``GET /metrics`` and the page at ``GET /`` (a search box), as for a model.

The queries of concurrent requests are embedded in batches (:mod:`.batching`) by the
index's encoder (the run or pretrained model ``index.json`` names); each request then
searches the index with its own vectors. The token, the per-client limit and the text limits
are the model service's (:mod:`.auth`, :mod:`.limits`).
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request

from graft.errors import RunError
from graft.searching import open_searcher
from graft.serve.app import TIMEOUT_SECONDS, admit, answer, guard, service_app
from graft.serve.batching import MAX_BATCH, QUEUE_LIMIT, MicroBatcher
from graft.serve.inputs import MAX_UPLOAD_BYTES, RequestError, json_object, read_body, texts_of
from graft.serve.limits import MAX_CLIENT_REQUESTS, MAX_TEXT_CHARS, RequestLimits
from graft.serve.metrics import ServeMetrics
from graft.serve.page import FETCH_WITH_TOKEN

#: The file that makes a folder an index (``graft index`` writes it).
INDEX_RECORD = "index.json"


def is_index(path: str | Path) -> bool:
    """Whether ``path`` is an index folder (it holds ``index.json``)."""
    return (Path(path).expanduser() / INDEX_RECORD).is_file()


class SearchService:
    """An index folder opened for serving: its record, the model that embeds queries (the
    searching kind's, found by :func:`graft.searching.open_searcher`), and the
    opened vector index.

    Attributes:
        folder: the index folder.
        record: its ``index.json`` (``encoder``, ``count``, ``dim``).
        searcher: the model that embeds queries and opens the index.
        opened: the vector index, opened once.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        if not is_index(self.folder):
            raise RunError(f"{self.folder}: not an index (no {INDEX_RECORD})")
        self.record = json.loads((self.folder / INDEX_RECORD).read_text())
        if self.record.get("modality", "text") != "text":  # a query would be a server path
            raise RunError(
                f"{self.folder}: an index of {self.record['modality']}s; graft serve answers "
                "text queries only (search it with graft search INDEX photo.jpg)"
            )
        self.searcher = open_searcher(self.record["encoder"])
        self.opened = self.searcher.open_index(self.folder)

    def embed(self, queries: list[str]) -> list[np.ndarray]:
        """One vector per query."""
        return list(self.searcher.embed(queries))

    def search(self, vectors: list[np.ndarray], top_k: int) -> list[list[dict]]:
        """The ``top_k`` documents of each vector, best first."""
        return self.opened.search(np.stack(vectors), top_k)


def create_search_app(
    service: SearchService,
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
    """The FastAPI application answering ``/search`` from ``service`` (see the module
    docstring); ``unused``: the model service's limits that a text search has no use for
    (pixels, audio seconds)."""
    limits = RequestLimits(text_chars=max_text_chars)
    metrics = ServeMetrics(max_batch)
    batcher = MicroBatcher(
        service.embed, max_batch=max_batch, queue_limit=queue_limit, observe=metrics.batch
    )
    describe = {
        "index": str(service.folder),
        "model": service.record.get("encoder"),
        "documents": service.record.get("count"),
        "task": "search",
    }
    app = service_app(batcher, metrics, describe, _page(describe), timeout)
    guard(app, batcher, metrics, token, max_client_requests)

    async def respond(queries: list[str], k: int, arrived: float) -> dict:
        left = timeout - (time.monotonic() - arrived)
        vectors = await answer(batcher, queries, left, timeout)
        return {"results": service.search(vectors, k)}

    @app.post("/search")
    async def search(request: Request):
        arrived = time.monotonic()
        admit(batcher)
        body = await read_body(request, max_upload_bytes)
        payload = json_object(body, request.headers.get("content-type", ""), _HINT)
        queries, k = texts_of(_as_texts(payload), top_k, limits)
        return await respond(queries, k, arrived)

    @app.get("/search")
    async def search_one(request: Request, q: str = "", top_k: int = top_k):
        arrived = time.monotonic()
        admit(batcher)
        queries, k = texts_of({"text": q, "top_k": top_k}, top_k, limits)
        return await respond(queries, k, arrived)

    return app


#: What a search request holds, said when it holds something else.
_HINT = 'this service searches: send JSON {"query": "..."} or {"queries": [...]}'


def _as_texts(payload: dict) -> dict:
    """A search request's object with ``query``/``queries`` read as the model service's
    ``text``/``texts`` (either spelling is taken)."""
    if "query" in payload and "text" not in payload:
        payload["text"] = payload.pop("query")
    if "queries" in payload and "texts" not in payload:
        payload["texts"] = payload.pop("queries")
    if "text" not in payload and "texts" not in payload:
        raise RequestError(400, 'send {"query": "a string"} or {"queries": ["strings"]}')
    return payload


def _page(describe: dict) -> str:
    """A search box that asks ``/search`` and lists the documents found."""
    title = html.escape(f"graft: search {describe['index']} ({describe['documents']} documents)")
    return _PAGE.replace("{{FETCH_WITH_TOKEN}}", FETCH_WITH_TOKEN).replace("{{TITLE}}", title)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; color: #222; }
input { width: 75%; font: inherit; padding: 0.3rem; }
li { margin: 0.6rem 0; } .score { color: #3a7bd5; font-variant-numeric: tabular-nums; }
#error { color: #b00; }
</style></head><body>
<h1>{{TITLE}}</h1>
<form id="form"><input id="query" placeholder="Search" autofocus>
<button>Search</button></form>
<div id="error" role="alert"></div><ol id="results" aria-live="polite"></ol>
<script>
{{FETCH_WITH_TOKEN}}
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = document.getElementById("query").value;
  const headers = {"Content-Type": "application/json"};
  const reply = await fetchWithToken(
    "search", {method: "POST", headers, body: JSON.stringify({query})});
  const answer = await reply.json();
  document.getElementById("error").textContent = reply.ok ? "" : answer.error;
  const list = document.getElementById("results");
  list.replaceChildren();
  for (const hit of (reply.ok ? answer.results[0] : [])) {
    const item = document.createElement("li");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3) + " ";
    item.append(score, document.createTextNode(hit.id + ": " + hit.text.slice(0, 300)));
    list.append(item);
  }
});
</script></body></html>
"""
