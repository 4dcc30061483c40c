"""Supervised pre-training: the backbone and a classifier trained on the labels of a larger
source dataset (the classic recipe of transfer learning: ImageNet classification, here on data
you own); the classifier is dropped afterwards.

The module is graft's own :class:`~graft.training.TransferModule` training every layer, with the
task's loss (cross-entropy for classes, binary cross-entropy for multi-label data, mean squared
error for a number), so the loss and the augmentation are exactly those of ``graft fit``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from graft.backbones.base import Backbone
from graft.data import LabelledData
from graft.data.transforms import Collate, InputDataset, mixup_for
from graft.pretraining.base import num_workers
from graft.tasks.capabilities import SingleLabel
from graft.training.module import TransferModule
from graft.training.phase import Phase
from graft.training.sampling import seeded_order, worker_options


class SupervisedModule(TransferModule):
    """A :class:`TransferModule` that also gives the mean loss of a batch (the reference loss
    before training, as :func:`graft.pretraining.base.mean_loss` measures it)."""

    def batch_loss(self, batch) -> tuple[torch.Tensor, int]:
        inputs, targets = batch
        return self.loss(self(inputs), self.prepare_targets(targets), train=False), len(targets)


def prepare(
    backbone: Backbone,
    train: LabelledData,
    val: LabelledData,
    config,
    phase: Phase,
) -> tuple[SupervisedModule, DataLoader, DataLoader]:
    """The module and the loaders of supervised pre-training on ``train``'s labels."""
    from graft.tasks import task_class

    task = task_class(train.task).from_training_data(train, config)
    head = task.new_head(backbone)
    mixup = None
    if backbone.modality == "image" and isinstance(task, SingleLabel):
        mixup = mixup_for(config.augment, len(train.classes), 0.1)
    module = SupervisedModule(
        head, phase, backbone, weight_decay=config.weight_decay, mixup=mixup, task=task
    )
    preprocessing = backbone.preprocessing
    options = dict(collate_fn=Collate(preprocessing), **worker_options(num_workers(config)))
    train_set = InputDataset(
        train.items, train.labels, preprocessing, train=True, augment=config.augment
    )
    train_loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        **seeded_order(len(train), config.seed),
        **options,
    )
    val_set = InputDataset(val.items, val.labels, preprocessing)
    return module, train_loader, DataLoader(val_set, batch_size=config.batch_size * 2, **options)
