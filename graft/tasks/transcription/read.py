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
- **datasets**: a ``datasets.Dataset`` with an ``Audio`` column (paths, encoded bytes or
  samples with their rate) and a transcript column, or a ``DatasetDict`` of splits
  (:mod:`graft.tasks.transcription.hf_dataset`).

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
    splits), a table with an audio-path and a transcript column, or a ``datasets.Dataset``
    with an audio and a transcript column (or splits of them)."""
    if isinstance(data, SpeechData) or is_speech_dataset(data):
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
    """``[train, val, test]`` of ``data``: a folder of split folders, one folder, a table, a
    ``datasets.Dataset`` or splits of them (a ``DatasetDict`` or a dict)."""
    from graft.data.frames import is_split_mapping, split_parts
    from graft.tasks.transcription.hf_dataset import is_dataset

    if isinstance(data, SpeechData) or is_dataset(data):
        return [read_speech(data), None, None]
    if is_split_mapping(data):
        found = split_parts(data, SPLIT_FOLDERS)
        return [None if found[s] is None else read_speech(found[s]) for s in SPLIT_FOLDERS]
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
    """One split: an audiofolder or Kaldi folder, a table, or a ``datasets.Dataset``."""
    from graft.tasks.transcription.hf_dataset import is_dataset

    if isinstance(data, SpeechData):
        return data
    if is_dataset(data):
        return read_dataset(data)
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
        missing = "audio-file" if audio is None else "transcript"
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


def is_speech_dataset(data: Any) -> bool:
    """Whether ``data`` is a ``datasets.Dataset`` with an audio column and a transcript
    column, or splits of them (a ``DatasetDict``, or a dict whose training split is one)."""
    from graft.data.frames import is_split_mapping
    from graft.tasks.transcription.hf_dataset import is_dataset

    if is_split_mapping(data):
        train = next((data[n] for n in ("train", "training") if n in data), None)
        return train is not None and is_speech_dataset(train)
    if not is_dataset(data):
        return False
    return bool(_dataset_audio(data) and find_column(list(data.column_names), TEXT_COLUMNS))


def _dataset_audio(data: Any) -> str | None:
    """The Dataset's ``datasets.Audio`` column, else one named as an audio column is."""
    from graft.tasks.transcription.hf_dataset import audio_features

    typed = audio_features(data)
    return typed[0] if typed else find_column(list(data.column_names), AUDIO_COLUMNS)


def read_dataset(data: Any) -> SpeechData:
    """A ``datasets.Dataset``'s utterances (:mod:`graft.tasks.transcription.hf_dataset`),
    named by row (``datasets.Dataset 'train', row 3``)."""
    from graft.data.frames import frame_name
    from graft.tasks.transcription.hf_dataset import clip_file, dataset_cells

    name, names = frame_name(data), list(data.column_names)
    audio, text = _dataset_audio(data), find_column(names, TEXT_COLUMNS)
    if audio is None or text is None:
        missing = "audio" if audio is None else f"transcript ({', '.join(TEXT_COLUMNS)})"
        raise DataError(f"{name}: no {missing} column; its columns are {', '.join(names)}")
    speaker = find_column(names, SPEAKER_COLUMNS)
    columns = [audio, text] + ([speaker] if speaker else [])
    rows = []
    for number, cells in enumerate(dataset_cells(data, columns)):
        who = str(cells[2]) if speaker else ""
        rows.append((f"{name}, row {number}", clip_file(cells[0]), cells[1], who))
    return _utterances(rows, Path.cwd(), name, speaker is not None)


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
        if not text:
            data.skipped.append((line, "empty transcript"))
            continue
        if audio is None:  # a Dataset's value that is no file, bytes or samples
            data.skipped.append((line, "unreadable audio (no file, bytes or samples)"))
            continue
        file = Path(str(audio)).expanduser()
        file = file if file.is_absolute() else root / file
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


def read_clips(inputs: list, column: str | None = None) -> list[str]:
    """Audio files to transcribe, in order: files; folders (an audiofolder's ``metadata``
    table or a Kaldi folder's ``wav.scp``, in their order, transcripts or not; otherwise every
    audio file under it, sorted); tables of audio files (``column``, else the first of
    :data:`AUDIO_COLUMNS`). A missing, unreadable or too long clip is refused naming it."""
    from graft.data.audio import is_audio_file

    clips: list[str] = []
    for given in inputs:
        path = Path(str(given)).expanduser()
        if path.is_dir():
            table = _metadata(path)
            if table is not None:
                clips.extend(_table_clips(table, column))
            elif is_kaldi(path):
                listed = _kaldi_map(path / "wav.scp").values()
                clips.extend(str(_resolve(path, file)) for _, file in listed)
            else:
                clips.extend(str(p) for p in sorted(path.rglob("*")) if is_audio_file(p))
        elif path.suffix.lower() in TABLE_SUFFIXES:
            clips.extend(_table_clips(path, column))
        elif not path.is_file():
            raise DataError(f"{path}: no such audio file")
        else:
            clips.append(str(path))
    for clip in clips:
        reason = check_clip(Path(clip), clip)
        if reason:
            raise DataError(f"{clip}: {reason}")
    return clips


def _table_clips(path: Path, column: str | None) -> list[str]:
    """The audio files a table's ``column`` (else its audio column) names, relative ones from
    the table's folder; empty cells left out."""
    frame = _read_table(path)
    names = [str(c) for c in frame.columns]
    if column:
        chosen, wanted = (column if column in names else None), f"column {column!r} (--column)"
    else:
        chosen = find_column(names, AUDIO_COLUMNS)
        wanted = f"audio-file column ({', '.join(AUDIO_COLUMNS)})"
    if chosen is None:
        raise DataError(f"{path}: no {wanted}; its columns are {', '.join(names)}")
    values = frame[frame.columns[names.index(chosen)]]
    return [str(_resolve(path.parent, v)) for v in values if isinstance(v, str) and v.strip()]


def _resolve(root: Path, value: Any) -> Path:
    file = Path(str(value)).expanduser()
    return file if file.is_absolute() else root / file
