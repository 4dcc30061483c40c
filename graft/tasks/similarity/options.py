"""The options of a similarity fit, in their own help panel. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass

from graft.errors import ConfigError
from graft.options import KindOptions, check_choice, option

LOSSES = ("auto", "mnrl", "cosine")
UNKNOWN_ITEMS = ("skip", "error")
#: A recommendation fit's defaults: epochs and batch size (its head's learning rate is
#: DEFAULT_PROJECTION_LR), and the items a user is represented by.
RECOMMENDATION_EPOCHS = 3
RECOMMENDATION_BATCH_SIZE = 256
DEFAULT_HISTORY_LENGTH = 50
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
        items: recommendation: the items table (item id and text columns).
        user_column, item_column, rating_column, time_column: recommendation: the
            interactions' columns (None: found by their common names).
        item_text_columns: recommendation: the items table's text columns, comma separated
            (None: every column but the id).
        history_length: recommendation: the latest interactions a user is represented by.
        unknown_items: recommendation: an interaction with an item not in the items table is
            skipped (and counted) or an error.
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

    items: str | None = option(
        None, "Recommendation: the items table (item id and text columns).", panel=PANEL
    )
    user_column: str | None = option(
        None, "Recommendation: the user column (default: found by name).", panel=PANEL
    )
    item_column: str | None = option(
        None, "Recommendation: the item column (default: found by name).", panel=PANEL
    )
    rating_column: str | None = option(
        None, "Recommendation: the rating or count column (default: found by name).", panel=PANEL
    )
    time_column: str | None = option(
        None, "Recommendation: the timestamp column (default: found by name).", panel=PANEL
    )
    item_text_columns: str | None = option(
        None,
        "Recommendation: the items table's text columns, comma separated (default: all but "
        "the id).",
        panel=PANEL,
    )
    history_length: int = option(
        DEFAULT_HISTORY_LENGTH,
        "Recommendation: how many of a user's latest interactions represent them.",
        panel=PANEL,
    )
    unknown_items: str = option(
        "skip",
        "Recommendation: an interaction whose item is not in --items: skip (counted) or error.",
        panel=PANEL,
    )

    def validate(self) -> SimilarityOptions:
        check_choice("unknown-items", self.unknown_items, UNKNOWN_ITEMS)
        if self.history_length < 1:
            raise ConfigError(f"--history-length must be at least 1, got {self.history_length}")
        check_choice("similarity-loss", self.similarity_loss, LOSSES)
        if self.similarity_scale <= 0:
            raise ConfigError(f"--similarity-scale must be positive, got {self.similarity_scale}")
        if self.encoder_lr is not None and self.encoder_lr <= 0:
            raise ConfigError(f"--encoder-lr must be positive, got {self.encoder_lr}")
        return self
