"""The one LightningModule graft trains: an optional backbone, a head, and a phase's plan.

Without a backbone it trains the head on cached features; with one it trains end to end. The
task picks the loss: cross-entropy (multiclass), binary cross-entropy on each label's logit
(multilabel) or the mean squared error of the standardised target (regression). Each
phase gets a new module, hence a fresh optimiser (Lightning's fine-tuning callbacks edit optimiser
groups in place, which breaks resuming), and frozen BatchNorm layers stay in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from graft.backbones.base import Backbone
from graft.training.optim import optimizer_config
from graft.training.phase import Phase


class TransferModule(L.LightningModule):
    """Training of ``head`` (on features, or on ``backbone`` outputs) with ``task``'s loss.

    Every task logs ``val_loss`` and ``val_score`` (higher is better: accuracy, micro-F1 at a
    0.5 threshold, or R²); multiclass also logs ``val_acc``. The task
    (:class:`graft.tasks.base.Task`) says how targets are prepared (a regression head learns the
    standardised target), the loss and the validation score.
    """

    def __init__(
        self,
        head: nn.Module,
        phase: Phase,
        backbone: Backbone | None = None,
        label_smoothing: float = 0.1,
        weight_decay: float = 0.01,
        class_weights: torch.Tensor | None = None,
        mixup: Callable | None = None,
        task: Any = None,
    ):
        super().__init__()
        self.mixup = mixup
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.head = head
        self.backbone = backbone
        self.phase = phase
        self.label_smoothing = label_smoothing
        self.weight_decay = weight_decay
        self.task = task
        self.val_accuracy, self.val_score = self.validation_metrics()
        self.trained_groups: list[list[nn.Parameter]] = []
        if backbone is not None:
            groups = backbone.parameter_groups()
            if phase.adapters_only:
                adapters = {id(p) for p in backbone.adapter_parameters()}
                groups = [kept for g in groups if (kept := [p for p in g if id(p) in adapters])]
            count = len(groups) if phase.backbone_groups is None else phase.backbone_groups
            self.trained_groups = groups[len(groups) - count :] if count else []
            backbone.requires_grad_(False)
            for group in self.trained_groups:
                for param in group:
                    param.requires_grad_(True)

    def validation_metrics(self) -> tuple[Metric | None, Metric | None]:
        """The metrics of ``val_acc`` (None when the task has no accuracy) and ``val_score``."""
        return self.task.validation_metrics()

    def trained_parameters(self) -> int:
        """How many parameters this phase trains (head included)."""
        trained = sum(p.numel() for group in self.trained_groups for p in group)
        return trained + sum(p.numel() for p in self.head.parameters())

    def forward(self, inputs) -> torch.Tensor:
        features = self.backbone(inputs) if self.backbone is not None else inputs
        return self.head(features)

    def on_train_epoch_start(self) -> None:
        # Lightning keeps each submodule's train/eval mode as it found it; a backbone trained
        # from random weights must learn its BatchNorm statistics (and use its dropout).
        if self.backbone is not None and self.phase.batchnorm_statistics:
            self.backbone.train()

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        if self.mixup is not None and len(targets) % 2 == 0:  # timm's mixup pairs the batch
            inputs, soft_targets = self.mixup(inputs, targets)
            log_probabilities = F.log_softmax(self(inputs), dim=-1)
            if self.class_weights is not None:  # normalised as cross_entropy's weight is
                soft_targets = soft_targets * self.class_weights
            loss = -(soft_targets * log_probabilities).sum() / soft_targets.sum()
        else:
            loss = self.loss(self(inputs), self.prepare_targets(targets), train=True)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(targets),
            sync_dist=True,  # averaged over the processes of a distributed run
        )
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        targets = self.prepare_targets(targets)
        outputs = self.validation_outputs(inputs, targets)
        shown = dict(prog_bar=True, batch_size=len(targets), add_dataloader_idx=False)
        if self.val_accuracy is not None:
            self.val_accuracy(outputs, targets)
            self.log("val_acc", self.val_accuracy, **shown)
        self.val_score(*self.task.score_inputs(outputs, targets))
        self.log("val_score", self.val_score, **shown)

    def validation_outputs(self, inputs, targets):
        """The model's outputs for a validation batch (prepared targets), after logging its
        ``val_loss``."""
        outputs = self(inputs)
        self.log(
            "val_loss",
            self.loss(outputs, targets, train=False),
            prog_bar=True,
            batch_size=len(targets),
            sync_dist=True,
            add_dataloader_idx=False,  # the source's names, beside a domain adaptation's target
        )
        return outputs

    def prepare_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as the task's loss and score take them (a regression target standardised)."""
        return self.task.prepare_targets(targets)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        """The task's loss on prepared targets; class weights and label smoothing weigh only
        training."""
        if not train:
            return self.task.loss(outputs, targets)
        return self.task.loss(
            outputs,
            targets,
            class_weights=self.class_weights,
            label_smoothing=self.label_smoothing,
        )

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.backbone is not None and not self.trained_groups:
            self.backbone.eval()  # a frozen backbone computes its features as it would cache them
        elif mode and self.backbone is not None and not self.phase.batchnorm_statistics:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()  # small batches of a new domain would corrupt the statistics
        return self

    def optimizer_groups(self) -> list[dict]:
        """The head at ``head_lr``; each trained backbone group at ``backbone_lr`` decayed by
        ``layer_decay`` per group below the top one."""
        groups = [{"params": list(self.head.parameters()), "lr": self.phase.head_lr}]
        for depth, group in enumerate(reversed(self.trained_groups)):
            lr = self.phase.backbone_lr * self.phase.layer_decay**depth
            groups.append({"params": group, "lr": lr})
        return groups

    def configure_optimizers(self):
        total = int(self.trainer.estimated_stepping_batches)
        return optimizer_config(
            self.optimizer_groups(), self.weight_decay, total, self.phase.warmup_fraction
        )
