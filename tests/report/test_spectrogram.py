"""Spectrogram thumbnails of real FSDD clips in the report's most confidently wrong
examples, and the note that replaces a clip that is gone."""

from __future__ import annotations

import base64
import io

import pytest
import soundfile
from PIL import Image

from graft.report.spectrogram import HEIGHT, log_mel, spectrogram_thumbnail
from graft.tasks.classification.report import classification_sections
from tests.conftest import SHARED

FSDD = SHARED / "fsdd"


@pytest.fixture(scope="module")
def clip():
    path = FSDD / "3" / "3_theo_0.wav"
    if not path.is_file():
        pytest.skip(f"shared dataset {FSDD} is not available")
    return path


def test_log_mel_of_a_clip(clip):
    decibels, seconds = log_mel(str(clip))
    assert seconds == pytest.approx(soundfile.info(str(clip)).duration)
    assert decibels.shape == (64, int(seconds * 16_000) // 160 + 1)  # 64 bands, 10 ms frames
    assert decibels.max() - decibels.min() == pytest.approx(80.0, abs=1e-3)  # top_db


def test_confident_errors_show_spectrograms(clip, tmp_path):
    thumbnail = spectrogram_thumbnail(str(clip))
    assert thumbnail.startswith('<img alt="log-mel spectrogram"')
    encoded = thumbnail.split("base64,")[1].split('"')[0]
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    seconds = soundfile.info(str(clip)).duration
    assert image.size == (min(224, int(seconds * 100) + 1), HEIGHT)
    gone = str(tmp_path / "gone.wav")
    per_class = {"3": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}}
    metrics = {
        "confusion_matrix": [[0, 0], [1, 0]],
        "per_class": per_class,
        "confident_errors": [
            {"item": str(clip), "label": "3", "predicted": "2", "probability": 0.9},
            {"item": gone, "label": "3", "predicted": "1", "probability": 0.8},
        ],
    }
    page = "".join(classification_sections(metrics, ["2", "3"], "test", "audio"))
    assert "<h2>Most confidently wrong (test)</h2>" in page
    assert page.count('alt="log-mel spectrogram"') == 1 and clip.name in page
    assert "(audio no longer readable)" in page and "gone.wav" in page
