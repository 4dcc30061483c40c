"""The head phase on cached features: batches sliced from the cached tensors hold the rows the
per-row collation held, and the phase trains on one thread, giving the process's back."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from graft.heads import ClassificationHead
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.distributed import EngineOptions
from graft.training.engine import head_threads, run_phase, training_callbacks
from graft.training.imbalance import balanced_sampler
from graft.training.loaders import feature_loader
from graft.training.module import TransferModule
from graft.training.phase import Phase
from graft.training.sampling import seeded_order


def cached(rows: int = 203, width: int = 12, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(rows, width, generator=generator)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).long()
    return features, labels


def epochs_of(loader: DataLoader, epochs: int = 2) -> list[list[tuple[torch.Tensor, ...]]]:
    batches = []
    for epoch in range(epochs):
        sampler = loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        batches.append(list(loader))
    return batches


@pytest.mark.parametrize("order", ["seeded", "balanced", "none"])
def test_sliced_batches_hold_the_rows_of_collated_ones(order):
    features, labels = cached()
    soft = torch.rand(len(labels), 3, dtype=torch.float64)  # multilabel or regression targets
    for targets in (labels, soft):

        def options():
            if order == "seeded":
                return seeded_order(len(labels), 7)
            if order == "balanced":
                sampler = balanced_sampler(labels.numpy(), 7)
                return {"sampler": sampler, "generator": torch.Generator().manual_seed(7)}
            return {}

        old = DataLoader(TensorDataset(features, targets), batch_size=32, **options())
        new = feature_loader(features, targets, batch_size=32, **options())
        before, after = epochs_of(old), epochs_of(new)
        assert [len(epoch) for epoch in after] == [len(epoch) for epoch in before] == [7, 7]
        for old_epoch, new_epoch in zip(before, after, strict=True):
            for (old_x, old_y), (new_x, new_y) in zip(old_epoch, new_epoch, strict=True):
                assert torch.equal(old_x, new_x) and torch.equal(old_y, new_y)
                assert new_y.dtype == old_y.dtype and new_x.dtype == old_x.dtype
        if order == "seeded":  # the epochs are shuffled differently
            assert not torch.equal(after[0][0][0], after[1][0][0])


class Threads(L.Callback):
    """The number of torch's intra-op threads at each training step."""

    def __init__(self):
        self.seen: set[int] = set()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.add(torch.get_num_threads())


def train_head(loaders, folder) -> tuple[list[dict], dict]:
    torch.manual_seed(0)
    head = ClassificationHead(12, 2)
    phase = Phase(name="head", epochs=4, backbone_groups=0, head_lr=0.05, patience=8)
    module = TransferModule(head, phase, task=MulticlassTask(["a", "b"]))
    rows = run_phase(module, *loaders, folder, 0, EngineOptions(progress=False))
    return rows, {k: v.clone() for k, v in head.state_dict().items()}


def test_the_head_phase_trains_the_same_head_on_one_thread(tmp_path):
    features, labels = cached()
    val_x, val_y = cached(64, seed=1)
    order = seeded_order(len(labels), 0)
    collated = (
        DataLoader(TensorDataset(features, labels), batch_size=16, **order),
        DataLoader(TensorDataset(val_x, val_y), 512),
    )
    order = seeded_order(len(labels), 0)
    sliced = (
        feature_loader(features, labels, batch_size=16, **order),
        feature_loader(val_x, val_y, batch_size=512),
    )
    threads, process = Threads(), torch.get_num_threads()
    with training_callbacks(threads):
        old_rows, old_head = train_head(collated, tmp_path / "collated")
    new_rows, new_head = train_head(sliced, tmp_path / "sliced")
    assert threads.seen == {1}  # one thread while the head trained
    assert torch.get_num_threads() == process  # and the process's threads back after
    for key, value in old_head.items():
        assert torch.equal(value, new_head[key]), key
    for old, new in zip(old_rows, new_rows, strict=True):
        for metric in ("train_loss", "val_loss", "val_acc", "val_score"):
            assert np.isclose(old[metric], new[metric], rtol=0, atol=1e-7), metric
    assert new_rows[-1]["val_acc"] > 0.75  # the head learned the rule behind the labels


class WithBackbone:
    backbone = torch.nn.Linear(2, 2)


def test_a_phase_through_the_backbone_keeps_the_process_threads():
    process = torch.get_num_threads()
    with head_threads(WithBackbone()):
        assert torch.get_num_threads() == process
    with pytest.raises(RuntimeError), head_threads(object()):
        assert torch.get_num_threads() == 1
        raise RuntimeError("a failed phase gives the threads back too")
    assert torch.get_num_threads() == process
