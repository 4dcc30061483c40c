"""The engine that serves (graft.serve.server, graft.cli.serve): an ONNX export of the run
serves the answers of the PyTorch model, and ``graft serve`` with its default ``--engine auto``
serves a run's export from several worker processes, says which engine, adds the workers' counts
up in /metrics and shuts down cleanly."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

import graft
from graft.export.exporter import export_model
from graft.serve import BackgroundServer, create_app
from tests.serve.conftest import metric_samples


@pytest.fixture(scope="module")
def exported_run(flowers_run, photos, tmp_path_factory):
    """A copy of the run with an ONNX export in its ``export/`` folder (the shared run keeps
    none, so ``auto`` serves it with torch elsewhere)."""
    run = tmp_path_factory.mktemp("exported") / "flowers"
    shutil.copytree(flowers_run[1], run)
    export_model(graft.load(run, engine="torch"), [str(p) for p in photos], run / "export", "onnx")
    return run


def ask(url: str, photos) -> list:
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    response = httpx.post(f"{url}/predict?top_k=5", files=files, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def assert_same_answers(found: list, expected: list) -> None:
    for mine, theirs in zip(found, expected, strict=True):
        assert [a["label"] for a in mine] == [a["label"] for a in theirs]
        for a, b in zip(mine, theirs, strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


@pytest.mark.slow
def test_the_onnx_engine_serves_the_answers_of_torch(exported_run, photos):
    answers = {}
    for engine in ("torch", "onnx"):
        model = graft.load(exported_run, engine=engine)
        with BackgroundServer(create_app(model, max_batch=4)) as live:
            assert httpx.get(f"{live.url}/health").json()["engine"] == engine
            answers[engine] = ask(live.url, photos[:9])
    assert_same_answers(answers["onnx"], answers["torch"])


@pytest.mark.slow
def test_graft_serve_auto_serves_the_export_from_two_workers(exported_run, photos):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "from graft.cli import main; main()", "serve"]
    options = ["--port", str(port), "--workers", "2", "--queue-limit", "8"]
    process = subprocess.Popen(
        [*command, str(exported_run), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = wait_for(url, process)
        assert health["engine"] == "onnx" and health["model"] == "efficientnet_lite0"
        found = [ask(url, photos[i : i + 1])[0] for i in range(6)]
        with BackgroundServer(create_app(graft.load(exported_run, engine="torch"))) as live:
            assert_same_answers(found, ask(live.url, photos[:6]))
        samples = metric_samples(url)  # whichever worker answers: both workers' counts
        assert samples["graft_requests_total", (("path", "/predict"), ("status", "200"))] == 6
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "with the onnx engine" in output and "2 worker(s)" in output


def wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> dict:
    """The service's /health once it answers (its output when it died instead)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read())
        try:
            return httpx.get(f"{url}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"graft serve did not answer on {url} within {seconds} s")
