"""What a transfer strategy is: a plan of training phases for the one engine."""

from __future__ import annotations

from abc import ABC, abstractmethod

from graft.backbones.base import Backbone
from graft.config import FitConfig
from graft.training.module import Phase

BACKBONE_LR_MULT = {"image": 0.1, "text": 0.05}


class Strategy(ABC):
    """A named recipe: the phases to train, in order. Strategies never own a training loop."""

    name: str
    #: True when the backbone keeps its pretrained weights (its features can be cached).
    frozen_backbone: bool

    @abstractmethod
    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        """The phases for ``config`` on ``backbone``."""


def backbone_lr(config: FitConfig, backbone: Backbone) -> float:
    mult = config.backbone_lr_mult or BACKBONE_LR_MULT[backbone.modality]
    return config.lr * mult
