"""The service under load (graft.serve.batching, .metrics, .server): a full queue answers 503
with Retry-After and never 500, a request above max_batch is split and answered whole, a
request without its answer in time gets 504, /metrics is Prometheus text, accepted requests are
answered through a shutdown, and a multi-label answer holds every predicted label."""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time

import httpx
import pytest

from graft.serve import BackgroundServer, create_app
from tests.serve.conftest import metric_samples, slow_down, upload


@pytest.fixture
def model(flowers_run):
    return flowers_run[0]


def test_a_full_queue_answers_503_with_retry_after_and_never_500(model, photos, monkeypatch):
    slow_down(monkeypatch, model, 0.8)
    with BackgroundServer(create_app(model, queue_limit=1)) as live:

        def ask(i: int) -> httpx.Response:
            time.sleep(0.05 * i)  # arrive one after another while the first is answered
            return httpx.post(f"{live.url}/predict", files=upload(photos[0]), timeout=60)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(ask, range(8)))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 2, statuses
        refused = [r for r in responses if r.status_code == 503]
        assert len(refused) >= 3, statuses  # one in the model, one queued, the rest refused
        for response in refused:
            assert int(response.headers["retry-after"]) >= 1
            assert "busy" in response.json()["error"] and "limit is 1" in response.json()["error"]
        assert httpx.post(f"{live.url}/predict", files=upload(photos[0])).status_code == 200
        samples = metric_samples(live.url)
    assert samples["graft_errors_total", (("kind", "queue_full"),)] == len(refused)
    assert ("graft_errors_total", (("kind", "model"),)) not in samples  # no 500


def test_a_request_above_max_batch_is_split_and_answered_whole(model, photos):
    with BackgroundServer(create_app(model, max_batch=3)) as live:
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos[:10]]
        response = httpx.post(f"{live.url}/predict?top_k=5", files=files, timeout=120)
        assert response.status_code == 200
        whole = response.json()["predictions"]
        health = httpx.get(f"{live.url}/health").json()
        assert health["inputs"] == 10 and health["batches"] == math.ceil(10 / 3)
        samples = metric_samples(live.url)
        assert samples["graft_batch_size_count", ()] == 4
        assert samples["graft_batch_size_bucket", (("le", "2.0"),)] == 1  # 3 + 3 + 3 + 1
        for photo, answer in zip(photos[:10], whole, strict=True):
            alone = httpx.post(f"{live.url}/predict?top_k=5", files=upload(photo)).json()
            assert [a["label"] for a in answer] == [a["label"] for a in alone["predictions"][0]]
            for mine, theirs in zip(answer, alone["predictions"][0], strict=True):
                assert mine["probability"] == pytest.approx(theirs["probability"], abs=1e-5)


def test_a_request_without_its_answer_in_time_gets_504(model, photos, monkeypatch):
    slow_down(monkeypatch, model, 1.5)
    with BackgroundServer(create_app(model, timeout=0.4)) as live:
        began = time.monotonic()
        response = httpx.post(f"{live.url}/predict", files=upload(photos[0]), timeout=60)
        assert response.status_code == 504 and time.monotonic() - began < 1.4
        assert "timeout of 0.4 s" in response.json()["error"]
        samples = metric_samples(live.url)
    assert samples["graft_errors_total", (("kind", "timeout"),)] == 1


def test_metrics_parse_as_prometheus_text_and_count_the_requests(model, photos):
    with BackgroundServer(create_app(model)) as live:
        for _ in range(3):
            assert httpx.post(f"{live.url}/predict", files=upload(photos[0])).status_code == 200
        bad = httpx.post(f"{live.url}/predict", content=b"x", headers={"content-type": "a/b"})
        assert bad.status_code == 415
        samples = metric_samples(live.url)
    ok = (("path", "/predict"), ("status", "200"))
    assert samples["graft_requests_total", ok] == 3
    assert samples["graft_requests_total", (("path", "/predict"), ("status", "415"))] == 1
    assert samples["graft_request_seconds_count", (("path", "/predict"),)] == 4
    assert samples["graft_batch_size_sum", ()] == 3 and samples["graft_queue_depth", ()] == 0
    assert samples["graft_errors_total", (("kind", "bad_request"),)] == 1


def test_shutdown_answers_the_accepted_requests(model, photos, monkeypatch):
    slow_down(monkeypatch, model, 1.0)
    answers = []
    live = BackgroundServer(create_app(model)).__enter__()

    def ask() -> None:
        answers.append(httpx.post(f"{live.url}/predict", files=upload(photos[0]), timeout=60))

    clients = [threading.Thread(target=ask) for _ in range(3)]
    for client in clients:
        client.start()
    time.sleep(0.4)  # all three accepted, the model busy with them
    live.__exit__(None, None, None)  # as Ctrl-C on `graft serve`
    for client in clients:
        client.join()
    assert [r.status_code for r in answers] == [200] * 3
    assert not live.thread.is_alive()


def test_a_multilabel_answer_holds_every_label_at_or_above_its_threshold(
    model, photos, monkeypatch
):
    from graft.tasks.classification.multilabel import MultilabelTask

    # the fitted head read as five independent labels: three thresholds every probability
    # passes, two none does, so exactly daisy, roses and tulips are predicted
    task = MultilabelTask(list(model.classes_), thresholds=[0.0, 1.0, 0.0, 1.0, 0.0])
    monkeypatch.setattr(model, "fitted_task_", task)
    chances = task.probabilities(model._outputs([str(photos[0])]))[0]
    with BackgroundServer(create_app(model)) as live:
        response = httpx.post(f"{live.url}/predict?top_k=1", files=upload(photos[0]))
    assert response.status_code == 200
    (answer,) = response.json()["predictions"]
    predicted = sorted(a["label"] for a in answer if a["predicted"])
    assert predicted == ["daisy", "roses", "tulips"]  # top_k is 1, yet all three are there
    most = model.classes_[chances.argmax()]
    assert answer[0]["label"] == most  # and the most probable label, predicted or not
    assert len(answer) == (3 if most in predicted else 4)
    for row in answer:
        j = model.classes_.index(row["label"])
        assert row["probability"] == pytest.approx(chances[j], abs=1e-6)
        assert row["threshold"] == task.thresholds[j]
