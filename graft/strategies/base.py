"""What a transfer strategy is: a plan of training phases for the one engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.config import FitConfig


#: Backbone learning rate as a fraction of the head's: 3e-4 for CNNs and 6e-5 for transformers
#: with AdamW at the default ``lr`` of 3e-3. On flowers5_128px with efficientnet_lite0, 3e-4
#: reached 0.817 after 3 epochs where 9e-5 reached 0.804 (bench/RESULTS.md).
BACKBONE_LR_MULT = {"image": 0.1, "text": 0.02, "audio": 0.1}

#: Epochs that train the backbone when ``--epochs`` is not given: each costs a forward and a
#: backward pass over the data, the dearest part of a fit.
DEFAULT_BACKBONE_EPOCHS = 3


class Strategy(ABC):
    """A named recipe: the phases to train, in order. Strategies never own a training loop."""

    name: str
    #: True when the backbone keeps its pretrained weights (its features can be cached).
    frozen_backbone: bool

    def prepare(self, config: FitConfig, backbone: Backbone) -> None:
        """Change ``backbone``'s structure before any training (``lora`` injects its adapters);
        the others leave it as it is."""
        return None

    @abstractmethod
    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        """The phases for ``config`` on ``backbone``."""

    def trainers(self, config: FitConfig) -> dict[str, Any]:
        """The trainers of the phase kinds this strategy plans other than ``transfer``
        (:class:`graft.training.runner.PhaseTrainer`, by ``Phase.kind``), handed to the phase
        runner; none by default."""
        return {}


def head_phase(config: FitConfig, epochs: int) -> Phase:
    """Training the new head alone on cached features (lowest validation loss kept)."""
    return Phase(name="head", epochs=epochs, backbone_groups=0, head_lr=config.lr, patience=8)


def backbone_epochs(config: FitConfig, backbone: Backbone) -> int:
    """Epochs of the phases that train the backbone: ``--epochs``, else the backbone's own
    default (``backbone_epochs``: an image network shown spectrograms, whose BatchNorm
    statistics adapt, needs more), else :data:`DEFAULT_BACKBONE_EPOCHS`."""
    own = getattr(backbone, "backbone_epochs", None)
    return config.epochs or own or DEFAULT_BACKBONE_EPOCHS


def backbone_lr(config: FitConfig, backbone: Backbone) -> float:
    own = getattr(backbone, "lr_mult", None)  # a backbone's own default (spectrograms)
    mult = config.backbone_lr_mult or own or BACKBONE_LR_MULT[backbone.modality]
    return config.lr * mult


def backbone_phase(
    config: FitConfig,
    backbone: Backbone,
    name: str,
    epochs: int,
    groups: int | None = None,
    head_lr: float | None = None,
) -> Phase:
    """A phase that trains the top ``groups`` groups of the backbone (None: all) and the head.

    The backbone trains at ``lr * backbone_lr_mult`` with the configured layer decay; the head
    at ``head_lr``, by default ten times the backbone's rate but never above ``lr`` (it was
    trained already; a backbone at the head's rate, spectrograms', leaves it at ``lr``).
    """
    rate = backbone_lr(config, backbone)
    return Phase(
        name=name,
        epochs=epochs,
        backbone_groups=groups,
        head_lr=head_lr if head_lr is not None else min(rate * 10, config.lr),
        backbone_lr=rate,
        layer_decay=config.layer_decay,
        patience=2,
        warmup_fraction=0.1,
        monitor="val_score",
    )


def group_count(backbone: Backbone) -> int:
    return len(backbone.parameter_groups())
