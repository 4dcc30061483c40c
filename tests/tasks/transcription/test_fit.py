"""Fits of tiny random speech models through graft's engine: Whisper and CTC, saved and
loaded with identical transcripts; predict, silence and broken clips on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.errors import DataError
from tests.tasks.transcription.conftest import needs_dataset

pytestmark = needs_dataset()


def _clips(data) -> list[str]:
    return sorted(str(p) for p in (data / "test").glob("*.flac"))


@pytest.mark.slow
def test_a_whisper_fit_saves_and_loads_identical_transcripts(small_speech, tiny_whisper, tmp_path):
    out = tmp_path / "run"
    model = graft.fit(
        str(small_speech), task="transcription", model=str(tiny_whisper), strategy="fine-tune",
        epochs=1, batch_size=4, out=str(out), num_workers=0,
    )  # fmt: skip
    assert model.task_ == "transcription"
    test = model.metrics_["test"]
    assert test["utterances"] == 6 and test["wer"] >= 0 and "per_speaker" in test
    assert model.metrics_["guard"]["pretrained_val_score"] is not None
    clips = _clips(small_speech)
    assert graft.load(out).predict(clips) == model.predict(clips)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["speakers"]["test"] >= 3

    silent = tmp_path / "silence.wav"
    soundfile.write(silent, np.zeros(16000 * 2, dtype="float32"), 16000)
    printed = CliRunner().invoke(app, ["predict", str(out), str(silent)])
    assert printed.exit_code == 0, printed.output
    assert "(silence: no speech)" in printed.output
    as_json = CliRunner().invoke(app, ["predict", str(out), clips[0], "--json"])
    record = json.loads(as_json.output.strip().splitlines()[-1])
    assert set(record) >= {"input", "transcript", "seconds"}

    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"\x00" * 400)
    refused = CliRunner().invoke(app, ["predict", str(out), str(broken)])
    assert isinstance(refused.exception, DataError)  # the command line prints it, exit 2
    assert "broken.flac: unreadable audio broken.flac" in str(refused.exception)
    assert "\n" not in str(refused.exception)


def test_a_ctc_model_trains_its_output_layer_and_reloads(small_speech, tiny_ctc, tmp_path):
    out = tmp_path / "ctc"
    model = graft.fit(
        str(small_speech), task="transcription", model=str(tiny_ctc),
        strategy="feature-extract", epochs=1, batch_size=4, out=str(out), num_workers=0,
    )  # fmt: skip
    assert model.metrics_["test"]["utterances"] == 6
    clips = _clips(small_speech)[:3]
    assert graft.load(out).predict(clips) == model.predict(clips)


def test_options_that_do_not_apply_are_refused_in_one_line(small_speech, tiny_ctc):
    from graft.errors import ConfigError

    with pytest.raises(ConfigError, match="a transcription fit takes feature-extract"):
        graft.fit(str(small_speech), task="transcription", model=str(tiny_ctc), strategy="gradual")
    with pytest.raises(ConfigError, match="--spec-augment must be in"):
        graft.fit(str(small_speech), task="transcription", spec_augment=1.5)


@pytest.mark.slow
def test_fine_tuning_tiny_en_lowers_wer_on_unheard_speakers(tmp_path):
    """48 training utterances of 24 speakers, 2 epochs of graft's default fine-tune; 20 test
    utterances of other speakers. Measured (seed 0, CPU, one thread): pretrained WER 0.306,
    fine-tuned 0.177 on these 20 (validation: pretrained 0.185); the floor leaves room for
    the noise of so small a test. About 4 minutes on an idle CPU, 25 on a crowded one."""
    from tests.tasks.transcription.conftest import subset

    data = tmp_path / "data"
    subset(data / "train", "train", 48, step=12)
    subset(data / "test", "test", 20, step=7)
    model = graft.fit(str(data), task="transcription", epochs=2, num_workers=0, seed=0)
    from graft.tasks.transcription.evaluate import evaluate_model

    before = evaluate_model("whisper-tiny.en", str(data))
    after = model.metrics_["test"]["wer"]
    assert after < before["wer"] and after < FLOOR, (before["wer"], after)


#: The fine-tuned WER of the test above stays under this (measured: see its docstring).
FLOOR = 0.25
