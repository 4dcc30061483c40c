"""Contrastive fine-tuning, then a head: for a few labelled examples per class.

Two phases:

1. ``contrastive`` (a phase of its own kind, trained by
   :class:`graft.fewshot.contrastive.ContrastiveTrainer`): the backbone alone learns to place
   examples of a class close together and examples of different classes apart. For texts, the
   cosine similarity of every pair of examples in a batch is regressed on 1 (same class) or 0
   (SetFit's objective: Tunstall et al., "Efficient Few-Shot Learning Without Prompts", 2022,
   with each example encoded once per batch instead of twice per pair:
   :func:`graft.fewshot.losses.batch_pair_loss`); images go in two augmented views each,
   under the supervised contrastive loss (SupCon: Khosla et al., NeurIPS 2020). No validation
   data is read: the last epoch is kept.
2. ``head``: the new head on the cached features of the fine-tuned backbone (the cache is keyed
   by the weights, so they are computed afresh).

On sst2 with MiniLM (5 seeds, bench/RESULTS.md, "Few labels at SetFit's cost"), 10 epochs of
every pair in the batch at 5e-5 scored as SetFit's 20 rounds of pairs did (0.667 against 0.668
at 8 sentences a class) at an eighth of the computation.
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
#: it from ``--lr``. Text: 5e-5, for the few steps of the batch objective (10 epochs of 16
#: sentences at 8 a class; SetFit's 2e-5 over 20 epochs scored 0.665 against 0.667 at 8 a
#: class and 0.689 against 0.691 at 16, 5 seeds each); images: the rate graft's other
#: strategies train a CNN at (3e-3 x 0.1).
CONTRASTIVE_LR = {"text": 5e-5, "image": 3e-4}

#: Epochs of the contrastive phase when ``--epochs`` is not given: passes over the labelled
#: examples (texts: every pair of each batch; images: SupCon on two views of each image).
CONTRASTIVE_EPOCHS = {"text": 10, "image": 10}

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
