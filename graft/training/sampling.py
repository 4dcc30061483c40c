"""The order of the training data: a function of the seed and the epoch, nothing else.

Lightning calls ``set_epoch`` on a sampler before every epoch. Drawing each epoch's order from a
generator seeded by ``(seed, epoch)`` (rather than from one generator that advances across epochs)
is what lets a run killed in epoch k resume with exactly the order it would have had.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A seeded shuffle of ``size`` indices, or, with ``weights``, ``size`` weighted draws with
    replacement; the same ``(seed, epoch)`` always gives the same indices.

    ``length`` draws that many indices an epoch instead (shuffles of all ``size`` indices one
    after the other, the last one cut short): unlabelled target data then keeps step with the
    source data, however many items each holds.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        weights: torch.Tensor | None = None,
        length: int | None = None,
    ):
        self.size = size
        self.seed = seed
        self.weights = weights
        self.length = length or size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is None:
            rounds = -(-self.length // self.size)
            order = torch.cat(
                [torch.randperm(self.size, generator=generator) for _ in range(rounds)]
            )
        else:
            order = torch.multinomial(
                self.weights, self.length, replacement=True, generator=generator
            )
        order = order[: self.length]
        return iter(order.tolist())


def loader_workers(configured: int | None) -> int:
    """Data-loading processes: ``configured``, else none on CPU (the main process is fastest
    there, and keeps a resumed epoch's augmentation exact), up to 8 on a GPU."""
    if configured is not None:
        return configured
    return min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0


def worker_options(workers: int) -> dict:
    """DataLoader options for ``workers`` loading processes, kept alive between epochs."""
    return {"num_workers": workers, "persistent_workers": workers > 0}


def seeded_order(size: int, seed: int) -> dict:
    """DataLoader options for a seeded shuffle of ``size`` items, a function of (seed, epoch)."""
    return {"sampler": EpochSampler(size, seed), "generator": torch.Generator().manual_seed(seed)}
