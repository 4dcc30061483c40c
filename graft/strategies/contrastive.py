"""Contrastive fine-tuning, then a head: for a few labelled examples per class.

Two phases:

1. ``contrastive`` (a phase of its own kind, trained by
   :class:`graft.fewshot.contrastive.ContrastiveTrainer`): the backbone alone learns to place
   examples of a class close together and examples of different classes apart. Texts go in
   pairs whose cosine similarity is regressed on 1 (same class) or 0 (SetFit: Tunstall et al.,
   "Efficient Few-Shot Learning Without Prompts", 2022); images go in two augmented views
   each, under the supervised contrastive loss (SupCon: Khosla et al., NeurIPS 2020). No
   validation data is read: the last epoch is kept.
2. ``head``: the new head on the cached features of the fine-tuned backbone (the cache is keyed
   by the weights, so they are computed afresh).

With 8 to 64 sst2 sentences per class and MiniLM, pairs lifted a logistic regression on the
embeddings by 3.5 to 4 points over the frozen encoder (bench/RESULTS.md, the few-labels section).
The backbone is saved with the run, as for every strategy that trains it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError
from graft.strategies.base import Strategy, head_phase
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.config import FitConfig

#: The kind of the contrastive phase (:attr:`graft.training.phase.Phase.kind`).
CONTRASTIVE = "contrastive"

#: Learning rate of the backbone in the contrastive phase, unless ``--backbone-lr-mult`` sets
#: it from ``--lr``: SetFit's 2e-5 for sentence encoders (the rate its paper and library use);
#: for images, the rate graft's other strategies train a CNN at (3e-3 x 0.1).
CONTRASTIVE_LR = {"text": 2e-5, "image": 3e-4}

#: Epochs of the contrastive phase when ``--epochs`` is not given. Text: one pass over
#: :data:`PAIR_ROUNDS` rounds of pairs, SetFit's single epoch. Images: SupCon learns from two
#: views of each image per epoch, so it needs more passes.
CONTRASTIVE_EPOCHS = {"text": 1, "image": 10}

#: Rounds of pairs of the text objective: each example anchors this many positive and as many
#: negative pairs (the paper's R = 20). On sst2 with MiniLM at 8 sentences per class, 20 rounds
#: reached 0.690 +- 0.028 where SetFit 1.x's pairing (every pair once, oversampled to balance)
#: reached 0.669 +- 0.009 (3 seeds, bench/fewshot_prototype.py).
PAIR_ROUNDS = 20

#: Of the images' SupCon loss: its temperature (the paper's 0.1) and the width of the
#: projection head that it trains on and that is dropped afterwards (the paper's 128).
SUPCON_TEMPERATURE = 0.1
SUPCON_PROJECTION = 128


class Contrastive(Strategy):
    name = "contrastive"
    frozen_backbone = False

    def phases(self, config: FitConfig, backbone: Backbone) -> list[Phase]:
        return [contrastive_phase(config, backbone), head_phase(config, config.head_epochs)]

    def trainers(self, config: FitConfig) -> dict[str, Any]:
        from graft.fewshot.contrastive import ContrastiveTrainer

        return {
            CONTRASTIVE: ContrastiveTrainer(
                pair_rounds=PAIR_ROUNDS,
                batch_size=config.batch_size,
                weight_decay=config.weight_decay,
                temperature=SUPCON_TEMPERATURE,
                projection_dim=SUPCON_PROJECTION,
                num_workers=config.num_workers,
            )
        }


def contrastive_phase(config: FitConfig, backbone: Backbone) -> Phase:
    """The contrastive phase of ``config`` on ``backbone``: every backbone group trains, with
    a 10% warm-up, and the last epoch is kept (there is no validation to choose one by)."""
    modality = backbone.modality
    if modality not in CONTRASTIVE_LR:
        raise ConfigError(
            f"--strategy contrastive fine-tunes text (pairs) and image (SupCon) backbones; "
            f"{backbone.spec} reads {modality}: use --strategy feature-extract or fine-tune"
        )
    rate = CONTRASTIVE_LR[modality]
    if config.backbone_lr_mult is not None and config.lr != "auto":
        rate = float(config.lr) * config.backbone_lr_mult
    return Phase(
        name=CONTRASTIVE,
        kind=CONTRASTIVE,
        epochs=config.epochs or CONTRASTIVE_EPOCHS[modality],
        backbone_groups=None,
        head_lr=config.lr if config.lr != "auto" else 1e-3,
        backbone_lr=rate,
        warmup_fraction=0.1,
        keep_last=True,
    )
