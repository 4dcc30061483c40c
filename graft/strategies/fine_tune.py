"""Two-phase fine-tuning: train the new head on frozen features, then the whole network.

Training the head first keeps the large gradients of a random head from wrecking the pretrained
features (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features": linear probing then
fine-tuning, LP-FT). The first phase runs on cached features, so it costs no backbone pass
beyond the one extraction. The second unfreezes the backbone with a learning rate lower than the
head's (``lr * backbone_lr_mult``), a linear warm-up and a cosine decay; BatchNorm statistics stay
frozen, and the best epoch by validation accuracy is kept.
"""

from __future__ import annotations

from graft.backbones.base import Backbone
from graft.config import FitConfig
from graft.strategies.base import Strategy, backbone_lr
from graft.training.module import Phase

DEFAULT_EPOCHS = 3


class FineTune(Strategy):
    name = "fine-tune"
    frozen_backbone = False

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        return [
            Phase(
                name="head",
                epochs=config.head_epochs,
                train_backbone=False,
                head_lr=config.lr,
                patience=8,
            ),
            Phase(
                name="finetune",
                epochs=config.epochs or DEFAULT_EPOCHS,
                train_backbone=True,
                head_lr=config.lr,
                backbone_lr=backbone_lr(config, backbone),
                patience=2,
                warmup_fraction=0.1,
            ),
        ]
