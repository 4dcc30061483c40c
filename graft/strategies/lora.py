"""LoRA: low-rank adapters train on the frozen backbone, after the head trained alone.

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models": each targeted layer keeps
its pretrained weight ``W`` and learns ``W x + (alpha / r) * B A x`` with rank ``r`` matrices
``A`` and ``B`` (:mod:`graft.backbones.lora` injects them with peft). ``B`` starts at zero, so
the adapted backbone first computes the pretrained features exactly: as in fine-tune, the head
trains alone on cached features, then the adapters and the head train together (LP-FT). The
trained parameters are a small share of the backbone's (about 0.2M of 3.4M for
efficientnet_lite0, 0.3M of 22M for minilm at rank 8), and a run saves only those and the head.
The pretrained weights and the BatchNorm statistics stay bit for bit; ``--layer-decay`` lowers
the adapters' rate group by group, as it does the weights' in fine-tune.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from graft.strategies.base import Strategy, backbone_epochs, backbone_phase, head_phase
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.backbones.lora import LoraSettings
    from graft.config import FitConfig


DEFAULT_RANK = 8

#: The adapters' learning rate as a fraction of ``lr`` (1e-3 at the default 3e-3): LoRA's
#: updates start from zero and need a higher rate than fine-tuning's weights.
LORA_LR_MULT = 1 / 3


def lora_settings(config: FitConfig, backbone: Backbone) -> LoraSettings:
    """The rank, alpha and target patterns of ``config``, with the defaults of ``backbone``."""
    from graft.backbones.lora import LoraSettings

    rank = config.lora_rank or DEFAULT_RANK
    alpha = config.lora_alpha if config.lora_alpha is not None else 2.0 * rank
    targets = config.lora_target_list() or backbone.lora_targets()
    return LoraSettings(rank=rank, alpha=float(alpha), targets=tuple(targets))


class Lora(Strategy):
    name = "lora"
    frozen_backbone = False

    def prepare(self, config: FitConfig, backbone: Backbone) -> None:
        from graft.backbones.lora import inject_lora

        inject_lora(backbone, lora_settings(config, backbone))

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        epochs = backbone_epochs(config, backbone)
        rate = config.lr * (config.backbone_lr_mult or LORA_LR_MULT)
        lora = backbone_phase(config, backbone, "lora", epochs, head_lr=config.lr)
        return [
            head_phase(config, config.head_epochs),
            replace(lora, backbone_lr=rate, adapters_only=True),
        ]
