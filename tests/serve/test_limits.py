"""The limits that hold under abuse (graft.serve.limits, .inputs): decoded pixels, audio seconds
and text length per request answered 413 before anything is decoded, requests in flight per
client answered 429, and slow clients (one byte a second) holding no one else up. A stub model
stands for a fitted one: these are the service's checks, not the model's."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient
from PIL import Image

from graft.serve import BackgroundServer, create_app
from graft.serve.limits import (
    MAX_REQUEST_AUDIO_SECONDS,
    MAX_REQUEST_PIXELS,
    MAX_TEXT_CHARS,
    ClientLimit,
)
from graft.tasks.capabilities import Served


class ServedTask(Served):
    """A fitted task that ``graft serve`` answers for (its answers are the stub model's)."""

    kind = "multiclass"

    def served_answers(self, outputs, top_k: int) -> list:
        return outputs


def stub_model(modality: str) -> SimpleNamespace:
    """What create_app reads of a fitted model, answering every input with one class."""
    answers = lambda items, top_k: [[{"label": "a", "probability": 1.0}] for _ in items]  # noqa: E731
    return SimpleNamespace(
        fitted_task_=ServedTask(),
        backbone_=SimpleNamespace(modality=modality),
        model_="stub",
        task_="multiclass",
        classes_=["a", "b"],
        engine_name_="stub",
        served_answers=answers,
        prepare=lambda items: items,
    )


def png(width: int, height: int) -> bytes:
    """A 1-bit PNG: a few kB on the wire, ``width * height`` pixels once decoded."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def flac(seconds: float, rate: int = 8000) -> bytes:
    """A FLAC of silence: small on the wire, ``seconds`` long once decoded."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), np.int16), rate, format="FLAC")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images():
    with TestClient(create_app(stub_model("image"))) as client:
        yield client


def test_decoded_pixels_per_request_are_limited(images):
    small = png(64, 64)
    assert images.post("/predict", files={"file": ("a.png", small)}).status_code == 200
    big = png(8000, 7000)  # 56 million pixels in one file
    assert len(big) < 100_000
    response = images.post("/predict", files={"file": ("big.png", big)})
    assert response.status_code == 413
    assert f"{MAX_REQUEST_PIXELS:,}" in response.json()["error"]
    halves = [("files", (f"{i}.png", png(6000, 5000))) for i in range(2)]  # 30 M each, 60 M
    response = images.post("/predict", files=halves)
    assert response.status_code == 413 and "pixels" in response.json()["error"]


@pytest.mark.parametrize("width", [10_000, 20_000])  # over PIL's limit, and over twice it
def test_a_pixel_bomb_is_counted_whatever_the_warning_filters(width):
    """Regression (bench/serve_soak.py): a header declaring 100 million pixels was answered 413
    or 400 by chance, its pixels counted 0 while another thread's decoding had made PIL's
    DecompressionBombWarning an error (warnings' filters are global); over twice PIL's limit,
    always 0. The declared pixels are counted either way."""
    import warnings

    from graft.serve.limits import image_pixels

    bomb = png(width, 10_000)
    assert image_pixels(bomb) == width * 10_000
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert image_pixels(bomb) == width * 10_000
        assert image_pixels(png(64, 64)) == 64 * 64
        assert image_pixels(b"not an image") == 0


def test_audio_seconds_per_request_are_limited(tmp_path):
    with TestClient(create_app(stub_model("audio"))) as client:
        short = client.post("/predict", files={"file": ("a.flac", flac(2.0))})
        assert short.status_code == 200, short.text
        long = flac(MAX_REQUEST_AUDIO_SECONDS + 5)
        assert len(long) < 200_000
        response = client.post("/predict", files={"file": ("long.flac", long)})
        assert response.status_code == 413
        assert "seconds of audio" in response.json()["error"]
        zero = client.post("/predict", files={"file": ("zero.wav", b"")})
        assert zero.status_code == 400 and "zero.wav" in zero.json()["error"]


def test_the_length_of_a_text_is_limited():
    with TestClient(create_app(stub_model("text"))) as client:
        fits = client.post("/predict", json={"text": "a" * MAX_TEXT_CHARS})
        assert fits.status_code == 200
        response = client.post("/predict", json={"texts": ["ok", "a" * (MAX_TEXT_CHARS + 1)]})
        assert response.status_code == 413
        assert "text 1 has" in response.json()["error"]


def test_requests_in_flight_per_client_are_limited():
    async def run() -> list[int]:
        gate = asyncio.Event()

        async def held(scope, receive, send):
            await gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        limit = ClientLimit(held, limit=2)
        statuses: list[int] = []

        def request(address: str):
            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            scope = {"type": "http", "path": "/predict", "client": (address, 1)}
            return limit(scope, None, send)

        first = [asyncio.create_task(request("10.0.0.7")) for _ in range(2)]
        local = asyncio.create_task(request("127.0.0.1"))  # loopback: exempt
        await asyncio.sleep(0.01)
        await request("10.0.0.7")  # a third one from the same client
        assert statuses == [429]
        other = asyncio.create_task(request("10.0.0.8"))  # another client is served
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*first, local, other)
        assert limit.in_flight == {}
        return statuses

    assert sorted(asyncio.run(run())) == [200, 200, 200, 200, 429]


def _slow_client(port: int, head: bytes, tail: bytes, stop: threading.Event) -> None:
    """Send ``head`` at once, then ``tail`` one byte a second until ``stop`` is set."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        for byte in tail:
            if stop.is_set():
                return
            connection.sendall(bytes([byte]))
            stop.wait(1.0)


def test_slow_clients_do_not_hold_up_the_others():
    model = stub_model("text")
    body = b'{"text": "' + b"x" * 200 + b'"}'
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    with BackgroundServer(create_app(model)) as live:
        stop = threading.Event()
        slow = [  # the headers one byte a second, and the body one byte a second (x4 each)
            threading.Thread(target=_slow_client, args=(live.port, b"", head, stop))
            for _ in range(4)
        ] + [
            threading.Thread(target=_slow_client, args=(live.port, head, body, stop))
            for _ in range(4)
        ]
        for thread in slow:
            thread.start()
        try:
            time.sleep(0.5)
            latencies = []
            began_all = time.monotonic()
            while time.monotonic() - began_all < 3.0:  # three seconds of slow bytes
                began = time.monotonic()
                answer = httpx.post(f"{live.url}/predict", json={"text": "quick"}, timeout=5)
                assert answer.status_code == 200
                assert httpx.get(f"{live.url}/health").json()["queue"] == 0
                latencies.append(time.monotonic() - began)
            assert len(latencies) >= 5 and max(latencies) < 1.0, latencies
        finally:
            stop.set()
            for thread in slow:
                thread.join(timeout=5)
