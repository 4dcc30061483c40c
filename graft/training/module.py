"""The one LightningModule graft trains: an optional backbone, a head, and a phase's plan.

Without a backbone it trains the head on cached features; with one it trains end to end. Each
phase gets a new module, hence a fresh optimiser (Lightning's fine-tuning callbacks edit optimiser
groups in place, which breaks resuming), and frozen BatchNorm layers stay in eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from graft.backbones.base import Backbone


@dataclass(frozen=True)
class Phase:
    """One stage of training: how long, what trains, and at which learning rates.

    Attributes:
        name: ``"head"`` or ``"finetune"``; names the phase's logs and checkpoints.
        epochs: the most epochs (early stopping may end it sooner).
        train_backbone: False trains the head alone, on cached features.
        head_lr: learning rate of the head.
        backbone_lr: learning rate of the backbone (used when ``train_backbone``).
        patience: epochs without a better validation accuracy before stopping.
        warmup_fraction: share of the steps with a linear warm-up before the cosine decay.
        monitor: the validation metric that picks the best epoch and stops early
            (``val_loss``, smooth even on a small validation set, or ``val_acc``).
    """

    name: str
    epochs: int
    train_backbone: bool
    head_lr: float
    backbone_lr: float = 0.0
    patience: int = 5
    warmup_fraction: float = 0.0
    monitor: str = "val_loss"


class TransferModule(L.LightningModule):
    """Cross-entropy training of ``head`` (on features, or on ``backbone`` outputs)."""

    def __init__(
        self,
        head: nn.Module,
        phase: Phase,
        backbone: Backbone | None = None,
        label_smoothing: float = 0.1,
        weight_decay: float = 0.01,
    ):
        super().__init__()
        self.head = head
        self.backbone = backbone
        self.phase = phase
        self.label_smoothing = label_smoothing
        self.weight_decay = weight_decay
        self.val_accuracy = MulticlassAccuracy(num_classes=head.num_classes, average="micro")
        if backbone is not None:
            backbone.requires_grad_(phase.train_backbone)

    def forward(self, inputs) -> torch.Tensor:
        features = self.backbone(inputs) if self.backbone is not None else inputs
        return self.head(features)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        loss = F.cross_entropy(self(inputs), targets, label_smoothing=self.label_smoothing)
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(targets)
        )
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        logits = self(inputs)
        self.val_accuracy(logits, targets)
        self.log(
            "val_loss", F.cross_entropy(logits, targets), prog_bar=True, batch_size=len(targets)
        )
        self.log("val_acc", self.val_accuracy, prog_bar=True, batch_size=len(targets))

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.backbone is not None:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()  # small batches of a new domain would corrupt the statistics
        return self

    def configure_optimizers(self):
        groups = [{"params": list(self.head.parameters()), "lr": self.phase.head_lr}]
        if self.backbone is not None and self.phase.train_backbone:
            trainable = [p for p in self.backbone.parameters() if p.requires_grad]
            groups.append({"params": trainable, "lr": self.phase.backbone_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
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
