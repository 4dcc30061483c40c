"""The training module of detection and instance segmentation: torchvision's losses, COCO mAP.

A torchvision detector returns its losses in training mode (the proposal network's objectness
and box regression, the box head's classification and regression, and Mask R-CNN's mask loss;
RetinaNet's focal loss; FCOS's) and its detections in eval mode, so :class:`DetectionModule`
trains on the sum of the losses and validates by the COCO mean average precision of the
detections (torchmetrics' ``MeanAveragePrecision``, pycocotools' evaluation): ``val_score`` is
the box mAP@[.5:.95] (the mask mAP for instance segmentation), ``val_map_50`` the mAP@.5. No
``val_loss`` is logged: the losses exist only in training mode, whose proposal sampling is
random, so every detection phase chooses its epoch by ``val_score``
(:meth:`graft.tasks.detection.task.DetectionTask.plan`).

Everything else is :class:`~graft.training.module.TransferModule`'s: the phase's trained
backbone groups, the head at ``head_lr`` and the backbone at ``backbone_lr`` with layer decay,
AdamW, the warm-up and cosine schedule, and BatchNorm layers kept in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from graft.training.module import TransferModule
from graft.training.phase import Phase


class DetectionModule(TransferModule):
    """Trains a :class:`graft.tasks.detection.detectors.DetectorHead` (and the phase's backbone
    groups).

    Args:
        head: the detection head; backbone: the graft backbone under it.
        metric: a fresh ``MeanAveragePrecision`` for the validation epochs.
        score_key: the metric's entry logged as ``val_score`` (``map``, or ``segm_map``).
        to_metric: turns ``(detections, targets)`` into what the metric takes.
    """

    def __init__(
        self,
        head: nn.Module,
        phase: Phase,
        backbone: nn.Module,
        *,
        task: Any,
        metric: Any,
        score_key: str,
        to_metric: Any,
        weight_decay: float = 0.01,
    ):
        super().__init__(head, phase, backbone, 0.0, weight_decay, None, None, task)
        self.val_map = metric
        self.score_key = score_key
        self.to_metric = to_metric

    def validation_metrics(self):
        return None, None  # the mAP is computed at the end of the epoch (val_map)

    def on_train_epoch_start(self) -> None:
        # Lightning keeps each submodule's mode as it finds it, and a head handed on from an
        # earlier phase ends that phase in eval mode, where a detector returns detections, not
        # losses: train mode again (TransferModule.train keeps the frozen parts in eval mode).
        self.train()
        super().on_train_epoch_start()

    def forward(self, images, targets=None):
        self.head.attach(self.backbone)
        return self.head(images, targets)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        images, targets = batch
        losses = self(images, targets)
        loss = sum(losses.values())
        shown = dict(on_step=False, on_epoch=True, batch_size=len(images), sync_dist=True)
        self.log("train_loss", loss, prog_bar=True, **shown)
        for name, value in losses.items():
            self.log(f"train_{name}", value, **shown)
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        images, targets = batch
        detections = self(images)
        self.val_map.update(*self.to_metric(detections, targets))

    def on_validation_epoch_end(self) -> None:
        values = self.val_map.compute()
        self.val_map.reset()
        prefix = self.score_key.removesuffix("map")
        self.log("val_score", float(values[self.score_key]), prog_bar=True)
        self.log("val_map_50", float(values[f"{prefix}map_50"]))
