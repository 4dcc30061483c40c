"""The inference service on loopback: real HTTP requests to a real uvicorn server, the web page
driven in headless Chromium, and the refusals of bad requests (graft.serve.app, .inputs,
.page)."""

from __future__ import annotations

import concurrent.futures
import shutil
from pathlib import Path

import httpx
import pytest

import graft
from graft.data import LabelledData
from graft.serve import BackgroundServer, create_app
from graft.serve.page import render_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"


@pytest.fixture(scope="module")
def model(flowers_run):
    return flowers_run[0]


@pytest.fixture(scope="module")
def server(model):
    with BackgroundServer(create_app(model, max_upload_bytes=2 * 2**20)) as live:
        yield live


def test_health(server):
    answer = httpx.get(f"{server.url}/health").json()
    assert answer["status"] == "ok" and answer["modality"] == "image"
    assert answer["engine"] == "torch" and answer["queue"] == 0
    assert answer["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def test_predict_an_upload_and_a_batch(server, model, photos):
    with open(photos[0], "rb") as handle:
        response = httpx.post(f"{server.url}/predict?top_k=2", files={"file": handle})
    assert response.status_code == 200
    (answer,) = response.json()["predictions"]
    assert len(answer) == 2 and answer[0]["probability"] >= answer[1]["probability"]
    expected = model.predict_proba([str(photos[0])])[0]
    assert answer[0]["label"] == model.classes_[expected.argmax()]
    assert answer[0]["probability"] == pytest.approx(expected.max(), abs=1e-5)
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos[:3]]
    response = httpx.post(f"{server.url}/predict", files=files)
    assert response.status_code == 200
    labels = [row[0]["label"] for row in response.json()["predictions"]]
    assert labels == model.predict([str(p) for p in photos[:3]])


def test_bad_requests_get_4xx_with_a_message(server, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image at all")
    cases = [
        (dict(files={"file": ("notes.jpg", fake.read_bytes(), "image/jpeg")}), 400, "notes.jpg"),
        (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "multipart"),
        (dict(files={"file": ("big.jpg", b"\0" * (3 * 2**20), "image/jpeg")}), 413, "limit"),
        (dict(files={"other": ("x.jpg", b"x", "image/jpeg")}), 400, "field 'file'"),
        (dict(json={"text": "a text for an image model"}), 415, "multipart"),
    ]
    for request, status, words in cases:
        response = httpx.post(f"{server.url}/predict", **request)
        assert response.status_code == status, response.text
        assert words in response.json()["error"]
    for k in ("0", "%C2%B2", "9" * 5000):  # zero, a superscript digit, an absurd number
        bad_k = httpx.post(f"{server.url}/predict?top_k={k}", files={"file": fake.open("rb")})
        assert bad_k.status_code == 400 and "top_k" in bad_k.json()["error"]
    many = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(70)]
    assert httpx.post(f"{server.url}/predict", files=many).status_code == 413


def test_concurrent_requests_are_batched(server, photos):
    content = photos[0].read_bytes()
    before = httpx.get(f"{server.url}/health").json()

    def ask(_):
        files = {"file": ("p.jpg", content, "image/jpeg")}
        return httpx.post(f"{server.url}/predict", files=files, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(ask, range(32)))
    after = httpx.get(f"{server.url}/health").json()
    assert statuses == [200] * 32
    assert after["inputs"] - before["inputs"] == 32
    assert after["batches"] - before["batches"] < 32  # some requests shared a forward pass


def test_text_requests_are_never_read_as_files(sst2_model_server):
    url, model = sst2_model_server
    readme = str(Path(__file__).resolve().parents[2] / "README.md")  # a file on the server
    response = httpx.post(f"{url}/predict", json={"texts": ["a delight", readme], "top_k": 1})
    assert response.status_code == 200
    expected = model.predict_proba(LabelledData([readme], None, model.classes_, "text", "t"))
    assert response.json()["predictions"][1][0]["probability"] == pytest.approx(
        expected.max(), abs=1e-5
    )
    nested = b"[" * 100_000 + b"]" * 100_000
    for body, words in (
        (b"{not json", "not valid JSON"),
        (b'{"texts": [1]}', "one or more"),
        (nested, "not valid JSON"),
        (b'{"text": "x", "top_k": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ):
        bad = httpx.post(
            f"{url}/predict", content=body, headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and words in bad.json()["error"]


@pytest.fixture(scope="module")
def sst2_model_server(tmp_path_factory):
    from tests.conftest import write_sst2

    folder = tmp_path_factory.mktemp("serve-text")
    train = write_sst2("train.csv", 120, folder / "train.csv")
    model = graft.fit(train, strategy="feature-extract", epochs=3, progress=False)
    with BackgroundServer(create_app(model)) as live:
        yield live.url, model


def test_the_web_page_shows_the_prediction_of_a_dropped_photo(server, model, photos):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    expected = model.predict([str(photos[0])])[0]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server.url + "/")
        page.set_input_files("#file", str(photos[0]))
        first = page.locator("#result .bar .label").first
        first.wait_for(timeout=30_000)
        assert first.text_content() == expected
        assert page.locator("#result .bar").count() == 5
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 1000


def test_the_page_escapes_what_it_shows():
    page = render_page(
        {
            "model": "<b>m</b>",
            "modality": "text",
            "task": "multiclass",
            "classes": ["</script><script>alert(1)</script>"],
        }
    )
    assert "<script>alert(1)" not in page and "&lt;b&gt;m&lt;/b&gt;" in page
