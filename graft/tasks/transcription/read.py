"""Reading utterances: the audiofolder layout, tables and Kaldi folders.

- **audiofolder** (Hugging Face's): audio files beside a ``metadata.csv`` (or
  ``metadata.jsonl``) whose ``file_name`` column names them and whose ``text``,
  ``transcription`` or ``sentence`` column holds the transcript; either in ``train/``,
  ``validation/`` (or ``val/``, ``dev/``) and ``test/`` folders, or one folder that graft
  splits.
- **tables**: CSV, TSV, JSON Lines or Parquet with an audio-path column (:data:`AUDIO_COLUMNS`)
  and a transcript column (:data:`TEXT_COLUMNS`); relative paths are read from the table's
  folder.
- **Kaldi**: a folder with ``wav.scp`` (``utterance-id path``) and ``text``
  (``utterance-id transcript``), and ``utt2spk`` when there (speakers); or such folders as
  ``train/``, ``dev/``, ``test/``.

A ``speaker`` column (or ``speaker_id``, ``client_id``; Kaldi's ``utt2spk``) gives per-speaker
metrics and a speaker-disjoint validation split. An utterance whose transcript is empty, whose
file is missing or cannot be decoded, or that holds only silence is skipped and listed (the
fit's ``summary.json`` counts them); a clip longer than :data:`MAX_SECONDS` (Whisper's window)
is refused, naming it and its line; a table without an audio or transcript column is refused,
naming the file and its columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graft.errors import DataError
from graft.tasks.transcription.data import SpeechData

#: Columns taken to hold the audio file, in order of preference.
AUDIO_COLUMNS = ("file_name", "audio", "audio_path", "path", "file", "filename", "wav", "clip")
#: Columns taken to hold the transcript, in order of preference.
TEXT_COLUMNS = ("text", "transcription", "sentence", "transcript", "normalized_text")
#: Columns taken to name the speaker.
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
#: The longest clip read, in seconds (Whisper's window): longer ones are refused by name.
MAX_SECONDS = 30.0
#: A clip whose peak amplitude stays below this is silence.
SILENCE_PEAK = 1e-4
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_FOLDERS = {
    "train": ("train",),
    "val": ("validation", "val", "dev", "valid"),
    "test": ("test",),
}


def find_column(names: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {str(n).lower(): n for n in names}  # a JSON list read as a table: int columns
    return next((lowered[w] for w in wanted if w in lowered), None)


def _metadata(folder: Path) -> Path | None:
    for name in ("metadata.csv", "metadata.jsonl", "metadata.tsv", "metadata.parquet"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_kaldi(folder: Path) -> bool:
    return (folder / "wav.scp").is_file() and (folder / "text").is_file()


def holds_speech(data: Any) -> bool:
    """Whether ``data`` is read by this kind: an audiofolder or Kaldi folder (or folders of
    splits), or a table with an audio-path and a transcript column."""
    if isinstance(data, SpeechData):
        return True
    if not isinstance(data, str | Path):
        return False
    path = Path(data).expanduser()
    if path.is_dir():
        folders = [path] + [path / n for names in SPLIT_FOLDERS.values() for n in names]
        return any(f.is_dir() and (is_kaldi(f) or _speech_table(_metadata(f))) for f in folders)
    return path.suffix.lower() in TABLE_SUFFIXES and _speech_table(path)


def _speech_table(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        names = list(_read_table(path, rows=5).columns)
    except DataError:
        return False
    return bool(find_column(names, AUDIO_COLUMNS) and find_column(names, TEXT_COLUMNS))


def _read_table(path: Path, rows: int | None = None):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            return frame.head(rows) if rows else frame
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, nrows=rows, dtype=False)
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep, nrows=rows, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable table ({error})") from None


def read_speech_splits(data: Any) -> list[SpeechData | None]:
    """``[train, val, test]`` of ``data``: a folder of split folders, one folder, a table."""
    if isinstance(data, SpeechData):
        return [data, None, None]
    path = Path(str(data)).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir() and not (_metadata(path) or is_kaldi(path)):
        parts: dict[str, SpeechData | None] = {}
        for split, names in SPLIT_FOLDERS.items():
            found = [path / n for n in names if (path / n).is_dir()]
            parts[split] = read_speech(found[0]) if found else None
        if parts["train"] is None:
            raise DataError(
                f"{path}: no speech data: a metadata.csv (file_name, text), a Kaldi wav.scp "
                "and text, or train/ validation/ test/ folders of them"
            )
        return [parts["train"], parts["val"], parts["test"]]
    return [read_speech(path), None, None]


def read_speech(data: Any) -> SpeechData:
    """One split: an audiofolder or Kaldi folder, or a table."""
    if isinstance(data, SpeechData):
        return data
    path = Path(str(data)).expanduser()
    if path.is_dir():
        if is_kaldi(path):
            return read_kaldi(path)
        table = _metadata(path)
        if table is None:
            raise DataError(f"{path}: no metadata.csv (file_name, text) and no Kaldi wav.scp")
        return read_table(table)
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    return read_table(path)


def read_table(path: Path) -> SpeechData:
    """A table of audio files and transcripts (see the module docstring)."""
    frame = _read_table(path)
    names = [str(c) for c in frame.columns]
    audio, text = find_column(names, AUDIO_COLUMNS), find_column(names, TEXT_COLUMNS)
    if audio is None or text is None:
        missing = "an audio-file" if audio is None else "a transcript"
        wanted = AUDIO_COLUMNS if audio is None else TEXT_COLUMNS
        raise DataError(
            f"{path}: no {missing} column ({', '.join(wanted)}); its columns are {', '.join(names)}"
        )
    speaker = find_column(names, SPEAKER_COLUMNS)
    first = 1 if path.suffix.lower() in (".jsonl", ".json", ".parquet") else 2
    rows = []
    for number, row in enumerate(frame.to_dict("records"), start=first):
        who = "" if speaker is None else str(row[speaker])
        rows.append((f"{path.name}:{number}", row[audio], row[text], who))
    return _utterances(rows, path.parent, str(path), speaker is not None)


def read_kaldi(folder: Path) -> SpeechData:
    """A Kaldi data folder: ``wav.scp``, ``text`` and ``utt2spk`` when there."""
    files = _kaldi_map(folder / "wav.scp")
    texts = _kaldi_map(folder / "text")
    speakers = _kaldi_map(folder / "utt2spk") if (folder / "utt2spk").is_file() else {}
    rows = []
    for utterance, (line, target) in files.items():
        if target.endswith("|"):
            raise DataError(
                f"{folder / 'wav.scp'}:{line}: {utterance} is a command (ending in '|'); "
                "graft reads audio files only"
            )
        if utterance not in texts:
            raise DataError(f"{folder / 'text'}: no transcript for {utterance} (wav.scp:{line})")
        who = speakers.get(utterance, (0, ""))[1]
        rows.append((f"wav.scp:{line}", target, texts[utterance][1], who))
    return _utterances(rows, folder, str(folder), bool(speakers))


def _kaldi_map(path: Path) -> dict[str, tuple[int, str]]:
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        found[key] = (number, value.strip())
    return found


def _utterances(rows: list, root: Path, source: str, has_speakers: bool) -> SpeechData:
    """Each ``(line, audio, text, speaker)`` checked: empty transcripts, missing, unreadable or
    silent audio skipped; clips over :data:`MAX_SECONDS` refused."""
    data = SpeechData([], [], [], source=source)
    for line, audio, text, speaker in rows:
        text = "" if text is None or text != text else str(text).strip()  # NaN: empty
        file = Path(str(audio)).expanduser()
        file = file if file.is_absolute() else root / file
        if not text:
            data.skipped.append((line, "empty transcript"))
            continue
        reason = check_clip(file, line)
        if reason:
            data.skipped.append((line, reason))
            continue
        data.paths.append(str(file))
        data.texts.append(text)
        data.lines.append(line)
        if has_speakers:
            data.speakers.append(speaker)
    if not len(data):
        raise DataError(f"{source}: no usable utterances ({len(data.skipped)} skipped)")
    return data


def check_clip(file: Path, line: str) -> str | None:
    """Why ``file`` is skipped (missing, unreadable), or None; DataError when it is longer
    than :data:`MAX_SECONDS`."""
    import soundfile

    if not file.is_file():
        return f"missing audio file {file.name}"
    try:
        info = soundfile.info(str(file))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        return f"unreadable audio {file.name} ({getattr(error, 'error_string', error)})"
    if info.frames == 0:
        return f"unreadable audio {file.name} (no samples)"
    if info.duration > MAX_SECONDS:
        raise DataError(
            f"{line}: {file.name} lasts {info.duration:.1f} s, over the {MAX_SECONDS:.0f} s "
            "window; cut it into clips of at most 30 s"
        )
    return None


def split_by_speaker(data: SpeechData, val_fraction: float, seed: int):
    """Indices of training and validation: a seeded ``val_fraction`` of the speakers, with
    all their utterances, when speakers are known (no voice in both); of the utterances
    otherwise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if not data.speakers or len(set(data.speakers)) < 2:
        order = rng.permutation(len(data))
        count = max(1, round(len(data) * val_fraction))
        return np.sort(order[count:]), np.sort(order[:count])
    speakers = sorted(set(data.speakers))
    rng.shuffle(speakers)
    count = min(len(speakers) - 1, max(1, round(len(speakers) * val_fraction)))
    held = set(speakers[:count])
    val = [i for i, s in enumerate(data.speakers) if s in held]
    train = [i for i, s in enumerate(data.speakers) if s not in held]
    return np.array(train), np.array(val)


def read_clips(inputs: list) -> list[str]:
    """Audio files to transcribe: files, folders of them, or tables with an audio column."""
    from graft.data.audio import is_audio_file

    clips: list[str] = []
    for given in inputs:
        path = Path(str(given)).expanduser()
        if path.is_dir():
            if holds_speech(path):
                clips.extend(read_speech(path).paths)
            else:
                clips.extend(str(p) for p in sorted(path.rglob("*")) if is_audio_file(p))
        elif path.suffix.lower() in TABLE_SUFFIXES:
            frame = _read_table(path)
            column = find_column([str(c) for c in frame.columns], AUDIO_COLUMNS)
            if column is None:
                raise DataError(f"{path}: no audio-file column ({', '.join(AUDIO_COLUMNS)})")
            clips.extend(str(_resolve(path.parent, v)) for v in frame[column])
        elif not path.is_file():
            raise DataError(f"{path}: no such audio file")
        else:
            clips.append(str(path))
    for clip in clips:
        reason = check_clip(Path(clip), clip)
        if reason:
            raise DataError(f"{clip}: {reason}")
    return clips


def _resolve(root: Path, value: Any) -> Path:
    file = Path(str(value)).expanduser()
    return file if file.is_absolute() else root / file
