"""A phase of training: what trains, for how long, at which rates, and how its epoch is kept.

A strategy (:mod:`graft.strategies`) plans a fit as a list of phases; the phase runner
(:mod:`graft.training.runner`) trains them one after the other through the engine. Plain data:
no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """One stage of training: how long, what trains, and at which learning rates.

    Attributes:
        name: ``"head"`` or ``"finetune"``; names the phase's logs and checkpoints.
        epochs: the most epochs (early stopping may end it sooner).
        backbone_groups: how many of the backbone's parameter groups train, counted from the
            top (output side); 0 trains the head alone, on cached features; None trains all.
        head_lr: learning rate of the head.
        backbone_lr: learning rate of the top trained group of the backbone.
        layer_decay: each group further down gets this factor times the rate of the one above
            (1.0: every group at ``backbone_lr``).
        patience: epochs without a better validation accuracy before stopping.
        warmup_fraction: share of the steps with a linear warm-up before the cosine decay.
        monitor: the validation metric that picks the best epoch and stops early
            (``val_loss``, smooth even on a small validation set, or ``val_score``: accuracy,
            micro-F1 or R² by task).
        adapters_only: of the trained groups, only the parameters of the backbone's adapters
            (LoRA's) train; the pretrained weights under them stay frozen.
        batchnorm_statistics: BatchNorm layers update their running statistics while
            training (a backbone trained from random weights has no pretrained statistics to
            keep); by default they stay in eval mode.
        keep_last: train every epoch and keep the last, with no early stopping: for a
            validation set too small to choose an epoch by (its best epoch is noise).
        kind: ``"transfer"``, the usual phase (a task's training module on labelled
            batches); any other kind is trained by the phase trainer its strategy hands the
            runner for it (:meth:`graft.strategies.base.Strategy.trainers`: ``contrastive``).
    """

    name: str
    epochs: int
    backbone_groups: int | None
    head_lr: float
    backbone_lr: float = 0.0
    layer_decay: float = 1.0
    patience: int = 5
    warmup_fraction: float = 0.0
    monitor: str = "val_loss"
    adapters_only: bool = False
    batchnorm_statistics: bool = False
    keep_last: bool = False
    kind: str = "transfer"

    @property
    def train_backbone(self) -> bool:
        return self.backbone_groups != 0
