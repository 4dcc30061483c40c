"""The training module of a multi-task fit: one head per task on the shared backbone, in the
one engine.

:class:`MultiTaskModule` is :class:`~graft.training.module.TransferModule` with a
:class:`~graft.heads.MultiTaskHead`: the batches carry the packed targets of every task
(:mod:`graft.tasks.classification.multitask_data`), each task's loss is taken over the rows
labelled for it, and
:class:`~graft.tasks.classification.multitask_loss.TaskWeighting` adds them up. Phases, optimiser
groups,
warm-up, checkpoints and early stopping are the single-task module's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from graft.backbones.base import Backbone
from graft.heads import MultiTaskHead
from graft.tasks.classification.multitask_data import TaskSpec, unpack_targets
from graft.tasks.classification.multitask_loss import (
    TaskWeighting,
    labelled_rows,
    masked_task_losses,
)
from graft.training.module import TransferModule
from graft.training.phase import Phase


class MultiTaskModule(TransferModule):
    """Training of a :class:`MultiTaskHead` (on features, or on ``backbone`` outputs).

    Logs, besides ``train_loss`` and ``val_loss`` (the weighted loss of :class:`TaskWeighting`
    on training and validation data): ``train_loss_<task>`` and ``val_loss_<task>``, each
    task's loss over its labelled rows; ``val_score_<task>``, its accuracy, micro-F1 (at 0.5)
    or R²; ``val_score``, the mean of those (which keeps the best epoch of a phase that trains
    the backbone); and ``task_weight_<task>``, each task's weight after the epoch's training.

    Args:
        head: the heads of every task.
        phase, backbone, label_smoothing, weight_decay: as for :class:`TransferModule`.
        tasks: the tasks' columns, in the order of the packed targets.
        subtasks: task name -> its single-label task (:mod:`graft.tasks`): its loss, its
            validation score and how its targets are prepared (a regression head learns the
            standardised target).
        weighting: adds up the task losses; its parameters (learned log-variances) train at
            the head's learning rate, without weight decay.
    """

    def __init__(
        self,
        head: MultiTaskHead,
        phase: Phase,
        backbone: Backbone | None = None,
        *,
        tasks: list[TaskSpec],
        subtasks: dict[str, Any],
        weighting: TaskWeighting,
        label_smoothing: float = 0.1,
        weight_decay: float = 0.01,
    ):
        super().__init__(
            head,
            phase,
            backbone,
            label_smoothing=label_smoothing,
            weight_decay=weight_decay,
        )
        self.subtasks = dict(subtasks)
        self.tasks = list(tasks)
        self.weighting = weighting
        self.task_scores = nn.ModuleList(
            self.subtasks[task.name].score_metric() for task in self.tasks
        )

    def validation_metrics(self) -> tuple[Metric | None, Metric | None]:
        return None, None  # one per task instead: task_scores

    def trained_parameters(self) -> int:
        own = sum(p.numel() for p in self.weighting.parameters())
        return super().trained_parameters() + own

    def task_targets(self, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Packed targets as each task's, prepared (regression targets standardised)."""
        unpacked = unpack_targets(targets, self.tasks)
        return {
            name: self.subtasks[name].prepare_targets(value) for name, value in unpacked.items()
        }

    def prepare_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets  # packed: the loss unpacks and prepares each task's (task_targets)

    def loss(self, outputs: dict, targets: torch.Tensor, train: bool) -> torch.Tensor:
        """The weighted loss of every task over its labelled rows (label smoothing only for
        training); logs each task's loss."""
        smoothing = self.label_smoothing if train else 0.0
        losses, counts = masked_task_losses(
            outputs, self.task_targets(targets), self.subtasks, smoothing
        )
        stage = "train" if train else "val"
        logged = dict(on_step=False, on_epoch=True, sync_dist=True, add_dataloader_idx=False)
        for name, value in losses.items():
            if counts[name]:
                self.log(f"{stage}_loss_{name}", value, batch_size=counts[name], **logged)
        return self.weighting(losses, counts)

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        outputs = self.validation_outputs(inputs, targets)
        unpacked = self.task_targets(targets)
        for task, metric in zip(self.tasks, self.task_scores, strict=True):
            target = unpacked[task.name]
            rows = labelled_rows(target)
            if not rows.any():
                continue
            target = target[rows]
            if task.kind != "multilabel":
                target = target[:, 0]
            if task.kind == "multiclass":
                target = target.long()
            metric.update(*self.subtasks[task.name].score_inputs(outputs[task.name][rows], target))

    def on_validation_epoch_end(self) -> None:
        scores = {}
        for task, metric in zip(self.tasks, self.task_scores, strict=True):
            if metric.update_called:
                scores[task.name] = metric.compute()
            metric.reset()
        for name, score in scores.items():
            self.log(f"val_score_{name}", score, sync_dist=False)
        if scores:
            mean = torch.stack([s.float() for s in scores.values()]).mean()
            self.log("val_score", mean, prog_bar=True, sync_dist=False)
        for name, weight in self.weighting.weights().items():  # as the epoch's training left it
            self.log(f"task_weight_{name}", weight, sync_dist=False)

    def optimizer_groups(self) -> list[dict]:
        """:meth:`TransferModule.optimizer_groups`, and the learned task weights at the head's
        rate without weight decay (which would pull them to 1)."""
        groups = super().optimizer_groups()
        learned = list(self.weighting.parameters())
        if learned:
            groups.append({"params": learned, "lr": self.phase.head_lr, "weight_decay": 0.0})
        return groups
