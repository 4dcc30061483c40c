"""The service locked when exposed (graft.serve.auth): over real HTTP, a service built as for a
non-loopback address answers /predict and /metrics 401 without its token and 200 with it,
/health stays open; on loopback nothing changes; where the token comes from; the page asks for
it once."""

from __future__ import annotations

import os
import shutil
import stat

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from graft.errors import ConfigError
from graft.serve import BackgroundServer, auth, create_app, serve
from graft.serve.auth import TOKEN_VARIABLE, is_loopback, service_token
from tests.serve.conftest import upload

TOKEN = "s3cret-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def model(flowers_run):
    return flowers_run[0]


@pytest.fixture(scope="module")
def locked(model):
    with BackgroundServer(create_app(model, token=TOKEN)) as live:
        yield live


@pytest.fixture
def no_token_around(monkeypatch, tmp_path):
    """No token in the environment; a generated one goes to a file under ``tmp_path``."""
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    monkeypatch.setattr(auth, "DEFAULT_TOKEN_FILE", tmp_path / "home" / ".graft" / "serve-token")
    return tmp_path / "home" / ".graft" / "serve-token"


def test_without_the_token_predict_and_metrics_are_401(locked, photos):
    for response in (
        httpx.post(f"{locked.url}/predict", files=upload(photos[0])),
        httpx.get(f"{locked.url}/metrics"),
        httpx.get(f"{locked.url}/openapi.json"),
        httpx.get(f"{locked.url}/metrics", headers={"Authorization": "Bearer wrong-token"}),
        httpx.get(f"{locked.url}/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
        httpx.get(f"{locked.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
    ):
        assert response.status_code == 401, response.text
        assert "Authorization: Bearer TOKEN" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_with_the_token_they_answer_and_health_and_the_page_stay_open(locked, model, photos):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(f"{locked.url}/predict", files=upload(photos[0]), headers=headers)
    assert response.status_code == 200
    assert response.json()["predictions"][0][0]["label"] == model.predict([str(photos[0])])[0]
    metrics = httpx.get(f"{locked.url}/metrics", headers=headers)
    assert metrics.status_code == 200 and 'status="401"' in metrics.text  # refusals counted
    assert httpx.get(f"{locked.url}/health").json()["status"] == "ok"
    assert httpx.get(f"{locked.url}/").status_code == 200


def test_loopback_without_a_token_works_as_before(model, photos, no_token_around):
    token, where = service_token("127.0.0.1")
    assert token is None and "loopback" in where
    with BackgroundServer(create_app(model, token=token)) as live:
        assert httpx.post(f"{live.url}/predict", files=upload(photos[0])).status_code == 200
        assert httpx.get(f"{live.url}/metrics").status_code == 200
    assert not no_token_around.exists()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_which_hosts_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_non_loopback_host_gets_a_generated_token_in_a_private_file(no_token_around):
    token, where = service_token("0.0.0.0")
    assert token and len(token) >= 32 and str(no_token_around) in where
    assert no_token_around.read_text().strip() == token
    assert stat.S_IMODE(no_token_around.stat().st_mode) == 0o600
    assert stat.S_IMODE(no_token_around.parent.stat().st_mode) == 0o700
    again, _ = service_token("0.0.0.0")
    assert again != token and no_token_around.read_text().strip() == again


def test_the_token_from_a_file_or_the_environment(no_token_around, tmp_path, monkeypatch):
    given = tmp_path / "token"
    given.write_text(TOKEN + "\n")
    given.chmod(0o600)
    assert service_token("0.0.0.0", given)[0] == TOKEN
    monkeypatch.setenv(TOKEN_VARIABLE, TOKEN)
    token, where = service_token("0.0.0.0")
    assert token == TOKEN and TOKEN_VARIABLE in where
    assert service_token("127.0.0.1")[0] == TOKEN  # given: required on loopback too
    assert not no_token_around.exists()
    monkeypatch.setenv(TOKEN_VARIABLE, "short")
    with pytest.raises(ConfigError, match="at least 16"):
        service_token("0.0.0.0")
    with pytest.raises(ConfigError, match="cannot read the token"):
        service_token("0.0.0.0", tmp_path / "missing")


def test_no_auth_is_explicit_and_warned(no_token_around, caplog, tmp_path):
    with caplog.at_level("WARNING", logger="graft.serve"):
        token, where = service_token("0.0.0.0", no_auth=True)
    assert token is None and "--no-auth" in where
    assert "WITHOUT authentication" in caplog.text and "0.0.0.0" in caplog.text
    with pytest.raises(ConfigError, match="contradict"):
        service_token("0.0.0.0", tmp_path / "token", no_auth=True)


def test_serve_on_a_public_address_builds_a_locked_app(model, photos, no_token_around, monkeypatch):
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    serve("unused", host="0.0.0.0", model=model)
    assert served["host"] == "0.0.0.0"
    token = no_token_around.read_text().strip()
    with TestClient(served["app"]) as client:
        assert client.post("/predict", files=upload(photos[0])).status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/health").status_code == 200
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/predict", files=upload(photos[0]), headers=headers).status_code == 200


def test_the_cli_refuses_contradicting_options_in_one_line(tmp_path, capsys, monkeypatch):
    from graft.cli import main

    arguments = ["graft", "serve", "/no/such/run", "--no-auth", "--token-file", str(tmp_path)]
    monkeypatch.setattr("sys.argv", arguments)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--no-auth and --token-file contradict" in " ".join(error.split())
    assert "Traceback" not in error


def test_the_page_asks_for_the_token_once(locked, model, photos):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    asked = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept(TOKEN)))
        page.goto(locked.url + "/")
        for photo in photos[:2]:
            page.set_input_files("#file", str(photo))
            first = page.locator("#result .bar .label").first
            first.wait_for(timeout=30_000)
            assert first.text_content() == model.predict([str(photo)])[0]
        browser.close()
    assert len(asked) == 1 and "token" in asked[0]
    assert os.environ.get(TOKEN_VARIABLE) != TOKEN  # nothing leaked into the environment
