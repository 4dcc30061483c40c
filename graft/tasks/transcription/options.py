"""The options of a transcription fit.

Declared once with :func:`graft.options.option`: ``graft fit --help`` lists them in their own
panel and ``graft.fit(..., normalize=False)`` takes them. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from graft.errors import ConfigError
from graft.options import KindOptions, option

PANEL = "Transcription"
#: The kind's defaults for the options left at graft's generic ones: a small learning rate
#: with a warm-up (the rate of the "fine-tune Whisper" guide is 1e-5 for larger models; the
#: tiny ones take more), small batches, a few epochs.
DEFAULT_LR = 5e-5
DEFAULT_BATCH_SIZE = 8
DEFAULT_EPOCHS = 3


@dataclass
class TranscriptionOptions(KindOptions):
    """Options of ``task="transcription"``.

    Attributes:
        normalize: score normalised texts (Whisper's English normaliser on references and
            hypotheses alike); False: texts only lower-cased.
        spec_augment: SpecAugment's share of time frames masked while training (0: off).
        beams: beams of Whisper's decoding (1: greedy).
        vocabulary: a file of domain words and names, one a line, that Whisper reads as the
            previous context (its prompt) before each clip.
    """

    normalize: bool = option(
        True,
        "Score normalised texts (Whisper's English normaliser: case, punctuation, numbers) "
        "on both sides; --no-normalize scores them only lower-cased.",
        panel=PANEL,
    )
    spec_augment: float = option(
        0.05, "SpecAugment: the share of time frames masked while training (0: off).", panel=PANEL
    )
    beams: int = option(1, "Beams of Whisper's decoding (1: greedy).", panel=PANEL)
    vocabulary: str | None = option(
        None,
        "A file of domain words and names, one a line, given to Whisper as its prompt.",
        panel=PANEL,
    )

    def validate(self) -> TranscriptionOptions:
        if not 0.0 <= self.spec_augment < 1.0:
            raise ConfigError(f"--spec-augment must be in [0, 1), got {self.spec_augment}")
        if self.beams < 1:
            raise ConfigError(f"--beams must be at least 1, got {self.beams}")
        return self
