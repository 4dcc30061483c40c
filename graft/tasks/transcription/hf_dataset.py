"""A Hugging Face ``datasets.Dataset`` of speech as utterances (``graft.fit(ds,
task="transcription")``), and a ``DatasetDict`` (or a dict) of them as splits.

:func:`graft.tasks.transcription.read.read_dataset` takes the audio column (the one whose
feature is ``datasets.Audio``, else the first of
:data:`~graft.tasks.transcription.read.AUDIO_COLUMNS`) and finds the transcript and speaker
columns by name as in a table; this module reads the cells. The audio column is read
undecoded (``Audio(decode=False)``), so ``datasets``' own decoder (torchcodec, with FFmpeg)
is not needed: each value is a file (``path``, relative ones from the current folder) or its
encoded bytes. Decoded values (a ``{"array", "sampling_rate"}`` cell, as a column of dicts
holds them) are written as 32-bit float WAV. Bytes and arrays are stored once as files under
``$GRAFT_CACHE_DIR/audio`` named by the SHA-256 of their bytes (as in-memory images are:
:func:`graft.data.frames.store_image`), because the rest of graft reads clips by path; every
clip is then decoded, made mono and resampled to the model's 16 kHz as a file's is. A value
that is neither is skipped as an unreadable clip, named by its row.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Rows read from the Arrow table at once.
CHUNK = 256


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a ``datasets.Dataset`` (without importing ``datasets``: if it is
    not imported, nothing is one)."""
    loaded = sys.modules.get("datasets")
    kind = getattr(loaded, "Dataset", None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(data, kind)


def audio_features(data: Any) -> list[str]:
    """The columns of the Dataset ``data`` whose feature is ``datasets.Audio``."""
    from datasets import Audio

    return [name for name, kind in data.features.items() if isinstance(kind, Audio)]


def dataset_cells(data: Any, columns: list[str]):
    """Each row's cells of ``columns`` (a tuple), an ``Audio`` column's undecoded
    (``{"bytes", "path"}``), :data:`CHUNK` rows read at a time."""
    from datasets import Audio

    for column in set(columns) & set(audio_features(data)):
        data = data.cast_column(column, Audio(decode=False))
    for start in range(0, len(data), CHUNK):
        chunk = data[start : start + CHUNK]
        yield from zip(*(chunk[column] for column in columns), strict=True)


def clip_file(value: Any) -> str | None:
    """The audio file of one cell: its path, or its bytes or samples stored as a file; None
    when it is none of these."""
    import soundfile

    if isinstance(value, str | os.PathLike):
        return str(Path(value).expanduser().resolve())
    if not isinstance(value, Mapping):
        return None
    if value.get("bytes"):
        data = bytes(value["bytes"])
        try:
            kind = soundfile.info(io.BytesIO(data)).format
        except (soundfile.LibsndfileError, RuntimeError, OSError):
            return None
        return store_audio(data, "." + kind.lower())
    if value.get("array") is not None and value.get("sampling_rate"):
        return store_audio(_wav(value["array"], int(value["sampling_rate"])), ".wav")
    if value.get("path"):
        return str(Path(value["path"]).expanduser().resolve())
    return None


def _wav(samples: Any, rate: int) -> bytes:
    """Samples (``[time]`` or ``[time, channels]``) as 32-bit float WAV."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(samples, dtype=np.float32), rate, "FLOAT", format="WAV")
    return buffer.getvalue()


def audio_store() -> Path:
    """Where in-memory clips are stored: ``audio/`` under graft's cache
    (``$GRAFT_CACHE_DIR``, else ``~/.cache/graft``)."""
    from graft.features import default_cache_dir

    return default_cache_dir() / "audio"


def store_audio(data: bytes, suffix: str) -> str:
    """The absolute path of a file holding ``data``, written once (atomically) as
    ``<store>/<sha[:2]>/<sha><suffix>``."""
    digest = hashlib.sha256(data).hexdigest()
    target = audio_store() / digest[:2] / f"{digest}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{digest}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    return str(target.resolve())
