"""Full fine-tuning: every layer trains from the first step, the new head included.

The plain recipe most tutorials use. The random head trains at ``lr`` and the backbone at the
lower ``lr * backbone_lr_mult`` (with ``--layer-decay``, lower still towards the input), so the
pretrained features are not destroyed while the head is still random. There is no head-only
phase, hence no feature cache: each epoch runs the backbone forward and backward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graft.strategies.base import Strategy, backbone_epochs, backbone_phase
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.config import FitConfig


class Full(Strategy):
    name = "full"
    frozen_backbone = False

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        epochs = backbone_epochs(config, backbone)
        return [backbone_phase(config, backbone, "full", epochs, head_lr=config.lr)]
