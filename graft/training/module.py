"""The one LightningModule graft trains: an optional backbone, a head, and a phase's plan.

Without a backbone it trains the head on cached features; with one it trains end to end. The
task picks the loss: cross-entropy (multiclass), binary cross-entropy on each label's logit
(multilabel) or the mean squared error of the standardised target (regression). Each
phase gets a new module, hence a fresh optimiser (Lightning's fine-tuning callbacks edit optimiser
groups in place, which breaks resuming), and frozen BatchNorm layers stay in eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MultilabelF1Score
from torchmetrics.regression import R2Score

from graft.backbones.base import Backbone


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

    @property
    def train_backbone(self) -> bool:
        return self.backbone_groups != 0


class TransferModule(L.LightningModule):
    """Training of ``head`` (on features, or on ``backbone`` outputs) with the task's loss.

    Every task logs ``val_loss`` and ``val_score`` (higher is better: accuracy, micro-F1 at a
    0.5 threshold, or R²); multiclass also logs ``val_acc``. ``target_stats`` is the training
    target's ``(mean, std)``: a regression head learns the standardised target.
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
        task: str = "multiclass",
        target_stats: tuple[float, float] = (0.0, 1.0),
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
        self.target_mean, self.target_std = target_stats
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
        """The metrics of ``val_acc`` (multiclass only) and ``val_score``, for the task."""
        score = validation_score(self.task, self.head.num_classes)
        if self.task != "multiclass":
            return None, score
        return validation_score(self.task, self.head.num_classes), score

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
            loss = self.loss(self(inputs), targets, train=True)
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
        outputs = self.validation_outputs(inputs, targets)
        shown = dict(prog_bar=True, batch_size=len(targets), add_dataloader_idx=False)
        if self.val_accuracy is not None:
            self.val_accuracy(outputs, targets)
            self.log("val_acc", self.val_accuracy, **shown)
        if self.task == "regression":
            targets = self.standardise(targets)
        self.val_score(*score_inputs(self.task, outputs, targets))
        self.log("val_score", self.val_score, **shown)

    def validation_outputs(self, inputs, targets):
        """The model's outputs for a validation batch, after logging its ``val_loss``."""
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

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        """The task's loss; class weights and label smoothing weigh only multiclass training."""
        if self.task == "regression":
            targets = self.standardise(targets)
        if not train:
            return task_loss(self.task, outputs, targets)
        return task_loss(
            self.task,
            outputs,
            targets,
            class_weights=self.class_weights,
            label_smoothing=self.label_smoothing,
        )

    def standardise(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean) / self.target_std

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.backbone is not None and not self.phase.batchnorm_statistics:
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
        optimizer = torch.optim.AdamW(self.optimizer_groups(), weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(total * self.phase.warmup_fraction)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def task_loss(
    task: str,
    outputs: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The mean loss of one task over a batch: cross-entropy (multiclass, with the optional
    class weights and label smoothing), binary cross-entropy on each label's logit
    (multilabel), or the mean squared error of the (already standardised) target (regression).
    """
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype))
    if task == "regression":
        return F.mse_loss(outputs.squeeze(-1), targets.to(outputs.dtype))
    return F.cross_entropy(outputs, targets, weight=class_weights, label_smoothing=label_smoothing)


def score_inputs(
    task: str, outputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the task's validation metric (:func:`validation_score`) takes from a batch:
    probabilities and 0/1 labels (multilabel), values and standardised targets (regression),
    or logits and class indices (multiclass)."""
    if task == "multilabel":
        return torch.sigmoid(outputs), targets.int()
    if task == "regression":
        return outputs.squeeze(-1), targets
    return outputs, targets


def validation_score(task: str, outputs: int) -> Metric:
    """The higher-is-better validation metric of ``task`` for a head of ``outputs`` values."""
    if task == "multilabel":
        return MultilabelF1Score(num_labels=outputs, average="micro")
    if task == "regression":
        return R2Score()
    return MulticlassAccuracy(num_classes=outputs, average="micro")
