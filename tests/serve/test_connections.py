"""The connections ``graft serve`` keeps (graft.serve.connections): idle and slow connections
that never finish their headers are closed after the header timeout, so a bounded crowd of
them on loopback does not keep others from being answered; past ``--max-connections`` a
request is answered 503; the limits as options of ``graft serve``; a ``--token-file`` others
can read is refused."""

from __future__ import annotations

import inspect
import socket
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from graft.errors import ConfigError
from graft.serve import BackgroundServer, create_app
from graft.serve import limits as serve_limits
from graft.serve.auth import service_token
from graft.serve.connections import GuardedH11Protocol, connection_options
from tests.serve.test_limits import png, stub_model

TOKEN = "a-long-enough-token-0123456789"


class QuickHeaders(GuardedH11Protocol):
    """The guarded protocol with a one-second header timeout, to test it quickly."""

    header_timeout = 1.0


def _closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_and_slow_connections_are_closed_and_others_still_served():
    app = create_app(stub_model("text"))
    with BackgroundServer(app, http=QuickHeaders, limit_concurrency=40) as live:
        crowd = []
        for i in range(30):  # idle sockets, and some sending a request's first bytes only
            sock = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            if i % 2:
                sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            crowd.append(sock)
        began = time.monotonic()
        answer = httpx.post(f"{live.url}/predict", json={"text": "hi"}, timeout=5)
        assert answer.status_code == 200 and time.monotonic() - began < 2
        time.sleep(1.2)
        assert all(_closed(sock, 2.0) for sock in crowd)
        for sock in crowd:
            sock.close()
        assert httpx.get(f"{live.url}/health", timeout=5).status_code == 200


def test_a_connection_that_sent_its_headers_is_not_cut_by_the_header_timeout():
    app = create_app(stub_model("text"))
    with BackgroundServer(app, http=QuickHeaders) as live, httpx.Client(timeout=5) as client:
        assert client.post(f"{live.url}/predict", json={"text": "a"}).status_code == 200
        time.sleep(0.5)  # within the keep-alive: the same connection answers again
        assert client.post(f"{live.url}/predict", json={"text": "b"}).status_code == 200


def test_past_max_connections_a_request_is_answered_503():
    app = create_app(stub_model("text"))
    with BackgroundServer(app, limit_concurrency=3) as live:
        held = [socket.create_connection(("127.0.0.1", live.port), timeout=5) for _ in range(3)]
        time.sleep(0.2)
        answer = httpx.post(f"{live.url}/predict", json={"text": "hi"}, timeout=5)
        assert answer.status_code == 503
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert httpx.post(f"{live.url}/predict", json={"text": "hi"}, timeout=5).status_code == 200


def test_headers_over_the_limit_are_answered_400():
    """Headers still incomplete past the limit (h11's max_incomplete_event_size) get 400."""
    limit = connection_options()["h11_max_incomplete_event_size"]
    with BackgroundServer(create_app(stub_model("text"))) as live:
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (limit + 10))
        assert sock.recv(1024).startswith(b"HTTP/1.1 400")
        sock.close()


def test_the_limits_are_options_of_graft_serve_with_the_library_defaults():
    from graft.cli.serve import serve_command

    defaults = {n: p.default for n, p in inspect.signature(serve_command).parameters.items()}
    assert defaults["max_pixels"] == serve_limits.MAX_REQUEST_PIXELS
    assert defaults["max_audio_seconds"] == serve_limits.MAX_REQUEST_AUDIO_SECONDS
    assert defaults["max_text_chars"] == serve_limits.MAX_TEXT_CHARS
    assert defaults["max_client_requests"] == serve_limits.MAX_CLIENT_REQUESTS
    assert defaults["max_connections"] == serve_limits.MAX_CONNECTIONS


def test_the_limits_given_to_the_app_hold():
    app = create_app(stub_model("text"), max_text_chars=10)
    with TestClient(app) as client:
        assert client.post("/predict", json={"text": "a" * 10}).status_code == 200
        too_long = client.post("/predict", json={"text": "a" * 11})
        assert too_long.status_code == 413 and "the limit is 10" in too_long.json()["error"]
    with TestClient(create_app(stub_model("image"), max_pixels=100)) as client:
        files = {"file": ("a.png", png(11, 10), "image/png")}
        assert client.post("/predict", files=files).status_code == 413


def test_a_nonpositive_limit_option_is_refused_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from graft.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--max-connections", "0"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--max-connections must be positive, got 0"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_token_file_others_can_read_or_change_is_refused(tmp_path, mode):
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    file.chmod(mode)
    with pytest.raises(ConfigError, match=r"other users can read or change it .*chmod 600") as e:
        service_token("0.0.0.0", file)
    assert "\n" not in str(e.value)
    file.chmod(0o600)
    assert service_token("0.0.0.0", file)[0] == TOKEN
