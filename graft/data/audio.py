"""Audio files: which files are audio, decoding them, fixing their length, and batches.

Decoding is soundfile's (libsndfile): torchaudio 2.9+ ``load`` needs the separate torchcodec
package (and FFmpeg), which graft does not require. A fresh ``pip install soundfile`` (0.12
or later: wheels for Linux x86_64, macOS and Windows, Linux arm64 from 0.13) bundles libsndfile
1.2, which reads WAV, FLAC, OGG (Vorbis, Opus) and MP3 (this environment: soundfile 0.14.0,
libsndfile 1.2.2). A soundfile that loads a system libsndfile older than 1.1 (a source build,
an old distribution package) reads no MP3, so :data:`AUDIO_EXTENSIONS` lists ``.mp3`` only when
the installed library reads it.

Every clip becomes a mono float32 waveform at the backbone's sample rate
(:func:`decode_audio`), cropped or zero-padded to its clip length (:func:`fit_length`). Files
that cannot be decoded are skipped with a warning and listed in ``skipped`` as
``(file or row, reason)``, as unreadable images are (:mod:`graft.data.sources`).

This module is to audio what :mod:`graft.data.images` is to images: class folders of audio
files and tables whose input column holds audio paths are read by
:func:`graft.data.sources.load_data` (which tells audio from images by the files' extensions)
and checked here (:func:`check_audio`); :class:`AudioDataset` and :func:`collate_audio` turn
them into batches of waveforms.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch.utils.data import Dataset

from graft.backbones.audio.preprocessing import (  # noqa: F401  (re-exported: data's names)
    AudioPreprocessing,
    audio_duration,
    default_clip_seconds,
)
from graft.errors import ConfigError, DataError

#: Extensions of the audio files read from class folders (``.mp3`` when libsndfile reads it).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus"}
    | ({".mp3"} if "MP3" in soundfile.available_formats() else set())
)
#: Column names taken to hold audio paths, in order of preference.
AUDIO_COLUMNS = ("audio", "audio_path", "path", "file", "filename", "filepath", "wav", "clip")


class UnreadableAudio(Exception):
    """An audio file cannot be decoded; the message says why."""


def is_audio_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _read(path: str | Path) -> tuple[np.ndarray, int]:
    """Every frame of ``path`` as float32 ``[frames, channels]``, and its sample rate."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableAudio("the file is empty")
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except UnreadableAudio:
        raise
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, EOFError) as error:
        reason = getattr(error, "error_string", None) or str(error) or type(error).__name__
        raise UnreadableAudio(f"not a readable audio file ({reason})") from None
    if data.shape[0] == 0:
        raise UnreadableAudio("the file holds no audio samples")
    if not np.isfinite(data).all():
        raise UnreadableAudio("the file holds NaN or infinite samples")
    return data, int(rate)


def decode_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """The whole of ``path`` as a mono float32 waveform ``[samples]`` at ``sample_rate``.

    Channels are averaged; other rates are resampled with torchaudio's windowed-sinc
    resampler (band-limited, so downsampling does not alias).

    Raises:
        UnreadableAudio: the file is missing, empty, not audio, corrupt or holds no samples.
    """
    data, rate = _read(path)
    waveform = torch.from_numpy(data.mean(axis=1))
    if rate != sample_rate:
        import torchaudio

        waveform = torchaudio.functional.resample(waveform, rate, sample_rate)
    return waveform.contiguous()


def fit_length(
    waveform: torch.Tensor,
    samples: int,
    train: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``waveform`` (``[..., time]``) cropped or zero-padded at the end to ``samples``.

    A longer clip is cropped at a random offset when training (a time shift that shows every
    part of a long clip over the epochs) and around its centre when evaluating.
    """
    length = waveform.shape[-1]
    if length > samples:
        if train:
            start = int(torch.randint(0, length - samples + 1, (1,), generator=generator))
        else:
            start = (length - samples) // 2
        return waveform[..., start : start + samples]
    if length < samples:
        return torch.nn.functional.pad(waveform, (0, samples - length))
    return waveform


# Checking files ---------------------------------------------------------------------------------


def check_audio(paths: list[str]) -> tuple[list[int], dict[int, str]]:
    """Decode every file once (in threads, at its own rate): the positions of those that
    decode, and why each of the others does not, by position."""

    def problem(path: str) -> str | None:
        try:
            _read(path)
        except UnreadableAudio as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(problem, paths))
    kept = [i for i, why in enumerate(problems) if why is None]
    return kept, {i: why for i, why in enumerate(problems) if why is not None}


# Batches ----------------------------------------------------------------------------------------


class AudioDataset(Dataset):
    """Audio files (and labels, when known) as fixed-length waveforms ``[samples]``.

    Each clip is decoded at ``preprocessing.sample_rate`` and cropped or padded to
    ``preprocessing.samples`` (:func:`fit_length`): at a random offset when ``train`` (drawn
    from torch's generator, which the DataLoader seeds per worker), else around the centre.
    """

    def __init__(
        self,
        items: list[str],
        labels: np.ndarray | None,
        preprocessing: AudioPreprocessing,
        train: bool = False,
    ):
        if not isinstance(preprocessing, AudioPreprocessing):
            raise ConfigError(
                f"an audio dataset needs an audio backbone's preprocessing, got "
                f"{type(preprocessing).__name__}"
            )
        self.items = items
        self.labels = labels
        self.preprocessing = preprocessing
        self.train = train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, object]:
        item = self.items[index]
        try:
            waveform = decode_audio(item, self.preprocessing.sample_rate)
        except UnreadableAudio as error:
            raise DataError(f"{item}: {error}") from None
        waveform = fit_length(waveform, self.preprocessing.samples, self.train)
        label = -1 if self.labels is None else self.labels[index]  # a class, row or value
        return waveform, label


def collate_audio(batch: list[tuple[torch.Tensor, object]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms stacked to ``[batch, samples]`` and their labels (int64, or float32 for
    multilabel and regression); picklable, for DataLoader workers."""
    waveforms, labels = zip(*batch, strict=True)
    return torch.stack(waveforms), torch.as_tensor(np.asarray(labels))
