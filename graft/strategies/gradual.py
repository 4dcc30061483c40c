"""Gradual unfreezing: the backbone thaws from the top, one parameter group at a time.

ULMFiT's recipe (Howard and Ruder 2018, "Universal Language Model Fine-tuning for Text
Classification"): after the head, the top group trains for ``--unfreeze-every`` epochs, then the
top two, and so on, so that lower layers start moving only once the layers above have adapted.
Each step is a phase of its own with a fresh optimiser (Lightning's unfreezing callbacks edit
optimiser groups in place, which breaks resuming); ``--epochs`` is the total of those epochs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

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


class Gradual(Strategy):
    name = "gradual"
    frozen_backbone = False

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        total = backbone_epochs(config, backbone)
        every = config.unfreeze_every
        phases = [head_phase(config, config.head_epochs)]
        for step in range(math.ceil(total / every)):
            groups = min(step + 1, group_count(backbone))
            epochs = min(every, total - step * every)
            phases.append(backbone_phase(config, backbone, f"unfreeze{groups}", epochs, groups))
        return phases
