"""Training semantic segmentation: the pixel losses and the training module.

The losses take logits ``[n, classes, H, W]`` and class-index masks ``[n, H, W]``; pixels of the
ignore index count in neither:

- ``ce``: cross-entropy, ``-mean_i w_{y_i} log softmax(z_i)_{y_i}`` over the pixels (weighted
  by class with ``--class-weights auto``);
- ``dice``: the soft Dice loss (Milletari et al. 2016, "V-Net"), ``1 - mean_c 2 sum_i p_ic
  g_ic / (sum_i p_ic + sum_i g_ic)`` over the classes present in the batch
  (segmentation_models_pytorch's ``DiceLoss``): insensitive to how few pixels a class has;
- ``ce+dice``: their sum, the default (as nnU-Net trains, Isensee et al. 2021): Dice keeps a
  small foreground from being drowned by the background, cross-entropy keeps the gradients
  smooth and calibrated.

:class:`SegmentationModule` is :class:`~graft.training.module.TransferModule` (phases, optimiser
groups, layer decay, frozen BatchNorm, schedule) whose validation runs whole images a few at a
time; its ``val_score`` is the mean IoU of the epoch
(:class:`graft.tasks.segmentation.metrics.MeanIoU`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from graft.training.module import TransferModule

#: Validation images through the network at once (whole images are large).
VALIDATION_CHUNK = 4


def segmentation_loss(
    logits: torch.Tensor,
    masks: torch.Tensor,
    kind: str = "ce+dice",
    ignore_index: int = 255,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean loss of a batch (see the module for the kinds)."""
    masks = masks.long()
    total = logits.new_zeros(())
    if kind in ("ce", "ce+dice"):
        weight = None if class_weights is None else class_weights.to(logits)
        total = total + F.cross_entropy(logits, masks, weight=weight, ignore_index=ignore_index)
    if kind in ("dice", "ce+dice"):
        from segmentation_models_pytorch.losses import DiceLoss

        dice = DiceLoss("multiclass", from_logits=True, ignore_index=ignore_index)
        total = total + dice(logits.float(), masks)
    return total


class SegmentationModule(TransferModule):
    """The training module of a segmentation phase (see the module docstring)."""

    def validation_outputs(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of whole validation images, :data:`VALIDATION_CHUNK` at a time,
        after logging the batch's ``val_loss``."""
        outputs = torch.cat([self(part) for part in inputs.split(VALIDATION_CHUNK)])
        self.log(
            "val_loss",
            self.loss(outputs, targets, train=False),
            prog_bar=True,
            batch_size=len(targets),
            sync_dist=True,
            add_dataloader_idx=False,
        )
        return outputs
