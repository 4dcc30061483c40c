"""Feature extraction: the backbone stays frozen; only the new head trains, on cached features.

The cheapest strategy and the safest with very few examples or features that already separate
the classes. The backbone runs once per input over the whole fit (and never again for the same
files, thanks to the feature cache); every epoch after that touches the head alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graft.strategies.base import Strategy, head_phase
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.config import FitConfig


DEFAULT_EPOCHS = 30


class FeatureExtract(Strategy):
    name = "feature-extract"
    frozen_backbone = True

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        return [head_phase(config, config.epochs or DEFAULT_EPOCHS)]
