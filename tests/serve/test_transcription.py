"""``graft serve`` of a speech model (graft.serve with the transcription kind): an uploaded
clip answered with its transcript, the refusals of what is not a clip or lasts longer than the
model's window, and the web page that uploads a file or records from the microphone (driven
in headless Chromium with a fake microphone)."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

import graft
from graft.serve import BackgroundServer, create_app
from tests.tasks.transcription.conftest import (  # noqa: F401  (fixtures)
    needs_dataset,
    subset,
    tiny_ctc,
)
from tests.tasks.transcription.test_export import saved_run

pytestmark = needs_dataset()


@pytest.fixture(scope="module")
def speech_model(tiny_ctc, tmp_path_factory):  # noqa: F811
    """A tiny random CTC model saved as a transcription run, loaded as ``graft serve`` loads
    it (the torch engine: the run has no export)."""
    run = saved_run(str(tiny_ctc), tmp_path_factory.mktemp("serve-speech") / "run")
    return graft.load(run)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = subset(tmp_path_factory.mktemp("serve-clips"), "test", 1)
    return next(folder.glob("*.flac"))


#: The page's last recording (the WAV file it sent, which the player holds), in base64.
RECORDING = """async () => {
  const source = document.getElementById("listen").src;
  const bytes = new Uint8Array(await (await fetch(source)).arrayBuffer());
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}"""


def _flac(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), np.int16), rate, format="FLAC")
    return buffer.getvalue()


def test_an_uploaded_clip_is_answered_with_its_transcript(speech_model, clip):
    expected = speech_model.predict([str(clip)])[0]
    with TestClient(create_app(speech_model)) as client:
        health = client.get("/health").json()
        assert health["task"] == "transcription" and health["clip_seconds"] == 30
        files = {"file": (clip.name, clip.read_bytes(), "audio/flac")}
        response = client.post("/predict", files=files)
        assert response.status_code == 200, response.text
        (answer,) = response.json()["predictions"]
        assert answer["text"] == expected and answer["seconds"] >= 0
        assert answer["duration"] == pytest.approx(soundfile.info(str(clip)).duration, abs=0.01)
        page = client.get("/").text
        assert 'id="record"' in page and "at most 30 s" in page


@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        ("notes.txt", b"not a sound", 400, "notes.txt: not a readable audio file"),
        ("empty.wav", b"", 400, "empty.wav: not a readable audio file (the file is empty)"),
        ("long.flac", None, 413, "long.flac: lasts 31.0 s, over this model's 30 s window"),
    ],
)
def test_bad_uploads_are_refused_in_one_line(speech_model, name, content, status, message):
    content = _flac(31.0) if content is None else content
    with TestClient(create_app(speech_model)) as client:
        response = client.post("/predict", files={"file": (name, content, "audio/wav")})
    assert response.status_code == status
    error = response.json()["error"]
    assert error.startswith(message) and "\n" not in error


def test_the_page_uploads_a_clip_and_records_one_from_the_microphone(speech_model, clip):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    expected = speech_model.predict([str(clip)])[0]
    wav = clip.with_suffix(".wav")  # Chromium's fake microphone plays a WAV file
    data, rate = soundfile.read(str(clip))
    soundfile.write(wav, data, rate, subtype="PCM_16")
    microphone = [
        "--use-fake-ui-for-media-stream",  # the microphone granted without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    with BackgroundServer(create_app(speech_model)) as live, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", *microphone]
        )
        page = browser.new_page()
        page.goto(live.url + "/")
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#transcript", timeout=30_000)
        assert page.text_content("#transcript") == (expected or "(silence: no speech)")
        page.click("#record")
        page.wait_for_function("document.getElementById('record').textContent === 'Stop'")
        page.wait_for_timeout(1500)
        with page.expect_response("**/predict?top_k=5") as posted:
            page.click("#record")
        response = posted.value
        assert response.status == 200, response.text()
        recorded = soundfile.info(io.BytesIO(base64.b64decode(page.evaluate(RECORDING))))
        assert recorded.channels == 1 and 1.0 <= recorded.duration <= 5.0, recorded
        assert set(response.json()["predictions"][0]) == {"text", "seconds", "duration"}
        page.wait_for_selector("#transcript", timeout=30_000)
        assert page.text_content("#error") == ""
        browser.close()
