"""Partial fine-tuning: only the top K parameter groups of the backbone train.

The lower layers of a pretrained network hold generic features (edges, textures, word pieces)
that transfer to most tasks, the upper ones task-specific ones (Yosinski et al. 2014, "How
transferable are features in deep neural networks?"). Training only the top ``--unfreeze K``
groups (stem-to-head groups from the backbone protocol: timm's stages, a transformer's layers)
adapts what needs adapting with fewer trained parameters and less risk of overfitting. As in
fine-tune, the head first trains alone on cached features; the frozen groups keep their weights
and BatchNorm statistics bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graft.errors import ConfigError
from graft.strategies.base import (
    Strategy,
    backbone_epochs,
    backbone_phase,
    group_count,
    head_phase,
)
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.config import FitConfig


class Partial(Strategy):
    name = "partial"
    frozen_backbone = False

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        available = group_count(backbone)
        if config.unfreeze > available:
            raise ConfigError(
                f"--unfreeze {config.unfreeze} is more than the {available} parameter groups of "
                f"{backbone.spec}; use at most {available} (or --strategy fine-tune for all)"
            )
        epochs = backbone_epochs(config, backbone)
        return [
            head_phase(config, config.head_epochs),
            backbone_phase(config, backbone, f"top{config.unfreeze}", epochs, config.unfreeze),
        ]
