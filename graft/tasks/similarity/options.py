"""The options of a similarity fit, in their own help panel. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass

from graft.errors import ConfigError
from graft.options import KindOptions, check_choice, option

LOSSES = ("auto", "mnrl", "cosine")
#: The kind's defaults for the options left at None.
DEFAULT_MODEL = "minilm"
DEFAULT_ENCODER_LR = 2e-5
DEFAULT_PROJECTION_LR = 1e-3
DEFAULT_BATCH_SIZE = 32
#: Epochs by strategy (1 for those that train the encoder).
DEFAULT_EPOCHS = {"feature-extract": 10}
PANEL = "Similarity"


@dataclass
class SimilarityOptions(KindOptions):
    """Options of ``task="similarity"``.

    Attributes:
        similarity_loss: ``mnrl`` (multiple-negatives ranking: in-batch negatives), ``cosine``
            (scored pairs), or ``auto`` (cosine for scored pairs, mnrl otherwise).
        hard_negatives: mine a hard negative per pair with the pretrained encoder.
        similarity_scale: the scale of cosine similarities in the mnrl loss.
        encoder_lr: the encoder's learning rate (fine-tune, full); None: 2e-5.
    """

    similarity_loss: str = option(
        "auto", "mnrl (in-batch negatives), cosine (scored pairs) or auto.", panel=PANEL
    )
    hard_negatives: bool = option(
        False, "Mine a hard negative per pair with the pretrained encoder.", panel=PANEL
    )
    similarity_scale: float = option(20.0, "Scale of cosine similarities in mnrl.", panel=PANEL)
    encoder_lr: float | None = option(
        None, "Learning rate of the encoder (default 2e-5).", panel=PANEL
    )

    def validate(self) -> SimilarityOptions:
        check_choice("similarity-loss", self.similarity_loss, LOSSES)
        if self.similarity_scale <= 0:
            raise ConfigError(f"--similarity-scale must be positive, got {self.similarity_scale}")
        if self.encoder_lr is not None and self.encoder_lr <= 0:
            raise ConfigError(f"--encoder-lr must be positive, got {self.encoder_lr}")
        return self
