"""What input an audio backbone expects: the sample rate, the clip length, and the frontend
that turns a waveform into the network's input.

Two frontends exist. A spectrogram backbone (:mod:`graft.backbones.audio.spectrogram`) computes
a log-mel spectrogram itself and feeds it to an image network: :class:`SpectrogramSettings`
records every choice that changes its features. A transformers audio model
(:mod:`graft.backbones.audio.hf_audio`) comes with its own feature extractor: the record names
where to load it from, as :class:`~graft.backbones.base.TextPreprocessing` names a tokenizer.
Either way the data layer (:mod:`graft.data.audio`) hands over mono waveforms at
``sample_rate``, cropped or zero-padded to ``clip_seconds``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from graft.errors import ConfigError, DataError

#: How a log-mel spectrogram is standardised: each clip by its own mean and standard
#: deviation, or every clip by the fixed ``mean`` and ``std`` (AST's way, with statistics of
#: the training data).
Normalization = Literal["clip", "fixed"]
#: :func:`default_clip_seconds`: the share of clips kept whole, the rounding step and the cap.
CLIP_QUANTILE, CLIP_STEP, MAX_CLIP_SECONDS = 0.95, 0.1, 10.0
#: The narrowest default spectrogram image, in frames (a 0.32 s clip at a 10 ms hop).
MIN_FRAMES = 32


@dataclass(frozen=True)
class SpectrogramSettings:
    """The log-mel spectrogram of a spectrogram backbone and how it becomes an image.

    Attributes:
        n_mels: mel bands (the image's height before resizing).
        n_fft: FFT size and window length in samples (400 = 25 ms at 16 kHz).
        hop_length: samples between frames (160 = 10 ms at 16 kHz).
        f_min, f_max: the mel filterbank's range in Hz (f_max None: half the sample rate).
        top_db: dynamic range kept below each clip's loudest bin, in dB.
        normalization: ``"clip"`` or ``"fixed"`` (see :data:`Normalization`).
        mean, std: the statistics of ``"fixed"`` normalisation, in dB.
        image_size: ``(height, width)`` the spectrogram is resized to (frequency, time); None
            until a backbone fills in :meth:`natural_size`.
    """

    n_mels: int = 64
    n_fft: int = 400
    hop_length: int = 160
    f_min: float = 0.0
    f_max: float | None = None
    top_db: float = 80.0
    normalization: Normalization = "clip"
    mean: float = 0.0
    std: float = 1.0
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.normalization not in ("clip", "fixed"):
            raise ConfigError(
                f"normalization must be 'clip' or 'fixed', got {self.normalization!r}"
            )
        for name in ("n_mels", "n_fft", "hop_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.std <= 0:
            raise ConfigError(f"std must be positive, got {self.std}")

    def natural_size(self, samples: int) -> tuple[int, int]:
        """The spectrogram of a clip of ``samples`` at its own resolution: ``n_mels`` rows by
        its frames (at least :data:`MIN_FRAMES`), as PANNs feed their CNNs, so the compute
        follows the clip's length. The default image: on FSDD (0.7 s clips, 64 x 71) it
        scored as 64 x 64 did where 224 x 224 costs twelve times the compute
        (bench/RESULTS.md, "Audio: spoken digits")."""
        return self.n_mels, max(MIN_FRAMES, samples // self.hop_length + 1)


@dataclass(frozen=True)
class AudioPreprocessing:
    """What input an audio backbone expects (saved with a run, hashed into its fingerprint).

    Attributes:
        sample_rate: the rate waveforms are resampled to, in Hz.
        clip_seconds: the length every waveform is cropped or zero-padded to.
        spectrogram: the log-mel frontend of a spectrogram backbone (None for a transformers
            model, whose feature extractor makes its input).
        feature_extractor: the folder or hub id of a transformers model's feature extractor
            (None for a spectrogram backbone).
    """

    sample_rate: int = 16_000
    clip_seconds: float = 1.0
    spectrogram: SpectrogramSettings | None = None
    feature_extractor: str | None = None
    modality: Literal["audio"] = "audio"

    def __post_init__(self) -> None:
        if self.sample_rate < 1:
            raise ConfigError(f"sample_rate must be a positive integer, got {self.sample_rate}")
        if not self.clip_seconds > 0:
            raise ConfigError(f"clip_seconds must be positive, got {self.clip_seconds}")

    @property
    def samples(self) -> int:
        """The length of one clip in samples."""
        return max(1, round(self.sample_rate * self.clip_seconds))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AudioPreprocessing:
        """Rebuild a record saved with :meth:`to_dict` (JSON turns tuples into lists)."""
        values = dict(values)
        spectrogram = values.pop("spectrogram", None)
        if spectrogram is not None:
            spectrogram = dict(spectrogram)
            if spectrogram.get("image_size") is not None:
                spectrogram["image_size"] = tuple(int(v) for v in spectrogram["image_size"])
            spectrogram = SpectrogramSettings(**spectrogram)
        return cls(**values, spectrogram=spectrogram)

    def replace(self, **changes: Any) -> AudioPreprocessing:
        """A copy with ``changes``: fields of this record or of its spectrogram settings.

        Raises:
            ConfigError: a name that is neither, or a spectrogram setting for a record
                without a spectrogram (a transformers model's feature extractor fixes those).
        """
        own = {f.name for f in dataclasses.fields(self)} - {"modality", "spectrogram"}
        inner_names = {f.name for f in dataclasses.fields(SpectrogramSettings)}
        unknown = sorted(set(changes) - own - inner_names)
        if unknown:
            raise ConfigError(
                f"unknown audio preprocessing option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(own | inner_names))}"
            )
        inner = {k: v for k, v in changes.items() if k in inner_names}
        record = dataclasses.replace(self, **{k: v for k, v in changes.items() if k in own})
        if inner and record.spectrogram is None:
            raise ConfigError(
                f"{', '.join(sorted(inner))}: a spectrogram setting, but this backbone's input "
                f"comes from the feature extractor of {record.feature_extractor}"
            )
        if inner:
            record = dataclasses.replace(
                record, spectrogram=dataclasses.replace(record.spectrogram, **inner)
            )
        return record


def audio_duration(path: str | Path) -> float:
    """The length of ``path`` in seconds, from its header (nothing is decoded)."""
    import soundfile

    try:
        return float(soundfile.info(str(path)).duration)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise DataError(f"{path}: cannot read the audio header ({error})") from None


def default_clip_seconds(durations: Sequence[float] | Any) -> float:
    """A clip length for data whose files last ``durations`` seconds.

    The 95th percentile, rounded up to 0.1 s and capped at 10 s: 95% of the clips are seen
    whole and the longest 5% are cropped (at random offsets when training) rather than every
    batch padded to the longest outlier, which would multiply the compute (FSDD: p95 0.66 s
    gives 0.7 s, where its longest clip, 2.28 s, would triple it). The cap is AudioSet's clip
    length and AST's input (10.24 s); longer recordings are better cut into clips.
    """
    import numpy as np

    values = np.asarray(durations, dtype=np.float64)
    if values.size == 0:
        raise DataError("no audio clips to choose a clip length from")
    quantile = float(np.quantile(values, CLIP_QUANTILE))
    steps = max(1, math.ceil(round(quantile / CLIP_STEP, 6)))
    return round(min(steps * CLIP_STEP, MAX_CLIP_SECONDS), 6)


def clip_seconds_of(files: Iterable[str | Path]) -> float:
    """:func:`default_clip_seconds` of the audio ``files``, read from their headers."""
    return default_clip_seconds([audio_duration(file) for file in files])
