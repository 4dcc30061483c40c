"""The data loaders of a fit: cached features for phases that train the head alone, raw inputs
for phases that train the backbone, in a training order that depends on the seed and the epoch
only (:mod:`graft.training.sampling`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from graft.tasks.capabilities import head_loaders, train_batches, validation_order
from graft.training.imbalance import balanced_sampler
from graft.training.sampling import loader_workers, seeded_order, worker_options

if TYPE_CHECKING:
    from graft.backbones.base import Backbone
    from graft.data import DataSplits
    from graft.features import FeatureCache


class CachedFeatures(TensorDataset):
    """Cached features and their targets, batched by slicing the tensors (one indexing per
    tensor a batch) instead of collating each row's tensors one by one: the batches hold the
    same rows, in the same order, as the default collation of a :class:`TensorDataset`."""

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(tensor[index] for tensor in self.tensors)


def sliced_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The ``collate_fn`` of :class:`CachedFeatures`: its batch is whole already."""
    return batch


def feature_loader(features: torch.Tensor, targets: torch.Tensor, **options) -> DataLoader:
    """A DataLoader of cached ``features`` and ``targets`` in sliced batches (``options``:
    the batch size and the order)."""
    return DataLoader(CachedFeatures(features, targets), collate_fn=sliced_batch, **options)


@dataclass
class FitLoaders:
    """Builds the loaders of one fit's phases.

    Attributes:
        splits: the training and validation data.
        backbone: the backbone whose preprocessing turns items into inputs.
        cache: the feature cache of the frozen backbone.
        task: the fitted task, which turns its data into a Dataset and batches
            (:meth:`graft.tasks.base.Task.dataset`, ``collate``).
        batch_size, seed, augment, views, sampler, num_workers: the fit's settings
            (:class:`graft.config.FitConfig`).
        world_size: processes of a distributed phase (their sampler shuffles across them).
        timings: where the time spent on features is added up (``features``).
    """

    splits: DataSplits
    backbone: Backbone
    cache: FeatureCache
    task: Any
    batch_size: int
    seed: int
    augment: str = "light"
    views: int = 1
    sampler: str | None = None
    num_workers: int | None = None
    world_size: int = 1
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_fit(cls, config: Any, splits, backbone, cache, timings, *, task, world_size: int = 1):
        """The loaders of a fit with ``config`` (:class:`graft.config.FitConfig`)."""
        return cls(
            splits,
            backbone,
            cache,
            task,
            config.batch_size,
            config.seed,
            config.augment,
            config.views,
            config.sampler,
            config.num_workers,
            world_size,
            timings,
        )

    @property
    def workers(self) -> int:
        return loader_workers(self.num_workers)

    def train_order(self, labels: np.ndarray | None, distributed: bool = False) -> dict:
        """DataLoader options for the training order, a function of (seed, epoch) only: a
        seeded shuffle or class-balanced draws; across processes, Lightning's
        DistributedSampler (seeded, reshuffled every epoch)."""
        generator = torch.Generator().manual_seed(self.seed)  # reseeded every epoch
        if self.sampler == "balanced":
            return {"sampler": balanced_sampler(labels, self.seed), "generator": generator}
        if distributed:
            return {"shuffle": True, "generator": generator}
        return seeded_order(len(self.splits.train if labels is None else labels), self.seed)

    def features(self) -> tuple[DataLoader, DataLoader]:
        """Training loader of cached features (``views`` views of each training image) and
        validation loader (None without validation data), for a phase that trains the head
        alone."""
        start = time.perf_counter()
        splits, batch, workers = self.splits, self.batch_size, self.workers
        views = self.views if self.backbone.modality == "image" else 1
        train_x = torch.cat(
            [
                self.cache.features(self.backbone, splits.train, batch, workers, v, self.augment)
                for v in range(views)
            ]
        )
        val = None
        if splits.val is not None:
            val_x = self.cache.features(self.backbone, splits.val, batch, workers)
            val = feature_loader(val_x, torch.as_tensor(splits.val.labels), batch_size=512)
        self.timings["features"] = self.timings.get("features", 0.0) + time.perf_counter() - start
        train_labels = np.concatenate([splits.train.labels] * views)
        order = self.train_order(train_labels)
        train = feature_loader(train_x, torch.as_tensor(train_labels), batch_size=batch, **order)
        return train, val

    def head_only(self) -> tuple[DataLoader, DataLoader]:
        """The loaders of a phase that trains the head alone: cached features, or raw inputs
        through the frozen backbone for a task whose features are not cached, as the task
        says (:func:`graft.tasks.capabilities.head_loaders`)."""
        return head_loaders(self.task, self)

    def options(self) -> dict:
        """The DataLoader options every loader of raw inputs shares."""
        collate = self.task.collate(self.backbone.preprocessing)
        return dict(collate_fn=collate, **worker_options(self.workers))

    def inputs(self, own_batches: bool = True) -> tuple[DataLoader, DataLoader]:
        """Training loader of raw (augmented) inputs and validation loader (None without
        validation data), for a phase that trains the backbone; batched and validated in the
        task's own order (:func:`graft.tasks.capabilities.train_batches`: texts of alike
        length together), unless ``own_batches`` is False (or, for training, classes are
        drawn balanced)."""
        preprocessing, splits, task = self.backbone.preprocessing, self.splits, self.task
        options = self.options()
        train = task.dataset(splits.train, preprocessing, train=True, augment=self.augment)
        distributed = self.world_size > 1
        batching = None
        if own_batches and self.sampler != "balanced":
            batching = train_batches(
                task, splits.train, self.batch_size, self.seed, distributed, preprocessing
            )
        if batching is None:
            order = self.train_order(getattr(splits.train, "labels", None), distributed)
            batching = {"batch_size": self.batch_size, **order}
        val = None
        if splits.val is not None:
            val = task.dataset(splits.val, preprocessing)
            order = validation_order(task, splits.val, distributed or not own_batches)
            val = DataLoader(val, batch_size=self.batch_size * 2, **order, **options)
        return DataLoader(train, **batching, **options), val
