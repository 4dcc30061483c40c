"""The readers of transcription data: audiofolder, tables, Kaldi; what is skipped, what is
refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from graft.errors import DataError
from graft.tasks.transcription.read import (
    holds_speech,
    read_speech,
    read_speech_splits,
    split_by_speaker,
)
from tests.tasks.transcription.conftest import DATASET, needs_dataset, rows, subset

pytestmark = needs_dataset()


def test_the_audiofolder_layout_reads_its_train_and_test_folders():
    train, val, test = read_speech_splits(DATASET)
    assert (len(train), val, len(test)) == (580, None, 140)
    assert train.texts[0] == "SO OF COURSE I WAS PICKED ON"
    assert Path(train.paths[0]).is_file() and train.lines[0] == "metadata.csv:2"
    assert holds_speech(DATASET) and not holds_speech(DATASET / "speakers.tsv")


def test_a_speaker_column_splits_validation_by_speaker(tmp_path):
    data = read_speech(subset(tmp_path, "train", 40, step=7))
    assert len(set(data.speakers)) > 5
    train, val = split_by_speaker(data, 0.25, seed=0)
    assert not {data.speakers[i] for i in train} & {data.speakers[i] for i in val}
    assert len(train) + len(val) == len(data)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_tables_of_audio_paths_and_transcripts(tmp_path, suffix):
    import pandas as pd

    chosen = rows("test")[:4]
    frame = pd.DataFrame(
        {
            "audio": [str(DATASET / "test" / r["file_name"]) for r in chosen],
            "sentence": [r["text"] for r in chosen],
        }
    )
    path = tmp_path / f"clips{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    data = read_speech(path)
    assert data.texts == [r["text"] for r in chosen] and len(data.paths) == 4


def test_a_kaldi_folder_with_its_speakers(tmp_path):
    chosen = rows("test")[:3]
    (tmp_path / "wav.scp").write_text(
        "".join(f"u{i} {DATASET / 'test' / r['file_name']}\n" for i, r in enumerate(chosen))
    )
    (tmp_path / "text").write_text("".join(f"u{i} {r['text']}\n" for i, r in enumerate(chosen)))
    (tmp_path / "utt2spk").write_text("u0 a\nu1 a\nu2 b\n")
    data = read_speech(tmp_path)
    assert data.texts == [r["text"] for r in chosen] and data.speakers == ["a", "a", "b"]
    (tmp_path / "text").write_text("u0 HELLO\n")
    with pytest.raises(DataError, match=r"no transcript for u1 \(wav.scp:2\)"):
        read_speech(tmp_path)


def test_broken_audio_and_empty_transcripts_are_skipped_and_counted(tmp_path):
    folder = subset(tmp_path, "test", 3)
    (folder / "broken.flac").write_bytes(b"not audio at all" * 10)
    with open(folder / "metadata.csv", "a") as handle:
        handle.write("broken.flac,HELLO THERE,x\n")
        handle.write(f"{rows('test')[5]['file_name']},,x\n")
    data = read_speech(folder)
    assert len(data) == 3
    reasons = dict(data.skipped)
    assert reasons["metadata.csv:5"].startswith("unreadable audio broken.flac")
    assert reasons["metadata.csv:6"] == "empty transcript"


def test_a_missing_transcript_column_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "metadata.csv").write_text("file_name,label\na.flac,yes\n")
    with pytest.raises(DataError) as error:
        read_speech(tmp_path)
    message = str(error.value)
    assert "metadata.csv: no transcript column" in message and "label" in message
    assert "\n" not in message


def test_a_clip_over_thirty_seconds_is_refused_by_name(tmp_path):
    soundfile.write(tmp_path / "long.wav", np.zeros(16000 * 31, dtype="float32"), 16000)
    (tmp_path / "metadata.csv").write_text("file_name,text\nlong.wav,A LONG READING\n")
    with pytest.raises(DataError, match=r"metadata.csv:2: long.wav lasts 31.0 s, over the 30 s"):
        read_speech(tmp_path)


def test_one_folder_without_splits(tmp_path):
    folder = subset(tmp_path / "only", "train", 5)
    shutil.copy(folder / "metadata.csv", tmp_path / "copy.csv")
    train, val, test = read_speech_splits(folder)
    assert len(train) == 5 and val is None and test is None
    assert json.dumps(train.speakers)


def test_summary_counts_what_was_skipped_by_reason(tmp_path):
    from graft.data import DataSplits
    from graft.tasks.transcription.task import TranscriptionTask

    folder = subset(tmp_path, "test", 2)
    (folder / "broken.flac").write_bytes(b"not audio at all" * 10)
    with open(folder / "metadata.csv", "a") as handle:
        handle.write("broken.flac,HELLO THERE,x\ngone.flac,HELLO,x\n")
        handle.write(f"{rows('test')[5]['file_name']},,x\n")
    summary = TranscriptionTask().summary(DataSplits(read_speech(folder), None, None))
    assert summary["skipped_by_reason"]["train"] == {
        "unreadable audio": 1,
        "missing audio": 1,
        "empty transcript": 1,
    }
    assert summary["speakers"]["train"] == 1  # both kept clips are one speaker's


def test_clips_to_transcribe_from_folders_and_tables(tmp_path):
    """``graft predict``'s inputs: an audiofolder's clips in its metadata's order, transcript
    or not; a folder of split folders, every clip under it; a table's ``--column``."""
    from graft.tasks.transcription.read import read_clips

    folder = subset(tmp_path / "data" / "test", "test", 3)
    listed = [str(folder / r["file_name"]) for r in rows("test")[:3]]
    with open(folder / "metadata.csv", "a") as handle:  # a clip not transcribed yet
        handle.write(f"{rows('test')[0]['file_name']},,x\n")
    assert read_clips([folder]) == listed + listed[:1]
    assert read_clips([tmp_path / "data"]) == sorted(listed)
    table = tmp_path / "clips.tsv"
    table.write_text("id\trecording\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(listed)))
    assert read_clips([table], column="recording") == listed
    with pytest.raises(DataError, match=r"clips.tsv: no column 'take' \(--column\); its col"):
        read_clips([table], column="take")
