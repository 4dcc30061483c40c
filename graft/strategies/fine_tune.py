"""Two-phase fine-tuning: train the new head on frozen features, then the whole network.

Training the head first keeps the large gradients of a random head from wrecking the pretrained
features (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features": linear probing then
fine-tuning, LP-FT). The first phase runs on cached features, so it costs no backbone pass
beyond the one extraction. The second unfreezes the backbone at ``lr * backbone_lr_mult`` (the
already-trained head at ten times that), with a linear warm-up and a cosine decay; BatchNorm
statistics stay frozen. The head phase keeps its epoch of lowest validation loss (smooth over
many cheap epochs); the fine-tuning phase its epoch of best validation accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graft.strategies.base import Strategy, backbone_epochs, backbone_phase, head_phase
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.config import FitConfig


class FineTune(Strategy):
    name = "fine-tune"
    frozen_backbone = False

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        return [
            head_phase(config, config.head_epochs),
            backbone_phase(config, backbone, "finetune", backbone_epochs(config, backbone)),
        ]
