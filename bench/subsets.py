"""Seeded per-class subsets of the shared datasets, as in-memory LabelledData, for benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graft.data import LabelledData, load_data

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def per_class(data: LabelledData, count: int | None, seed: int = 0) -> LabelledData:
    """At most ``count`` examples of each class (all with None), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(data.classes)):
        members = np.flatnonzero(data.labels == label)
        rng.shuffle(members)
        chosen.extend(members[: count or len(members)])
    return data.subset(sorted(chosen))


def split_per_class(
    data: LabelledData, counts: list[int | None], seed: int = 0
) -> list[LabelledData]:
    """Disjoint per-class parts of ``data``: ``counts[k]`` examples of each class in part k
    (None: the rest)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in counts]
    for label in range(len(data.classes)):
        members = np.flatnonzero(data.labels == label)
        rng.shuffle(members)
        start = 0
        for part, count in zip(parts, counts, strict=True):
            stop = len(members) if count is None else start + count
            part.extend(members[start:stop])
            start = stop
    return [data.subset(sorted(part)) for part in parts]


def flowers(datasets: Path = DATASETS) -> tuple[LabelledData, LabelledData, LabelledData]:
    """flowers5_128px: its train split; its val split cut into 50 per class for validation and
    the rest (417 photos) for test."""
    root = datasets / "flowers5_128px"
    val, test = split_per_class(load_data(root / "val"), [50, None])
    return load_data(root / "train"), val, test


def sst2(datasets: Path = DATASETS) -> tuple[LabelledData, LabelledData, LabelledData]:
    """sst2: 1,000 training rows per class drawn from train.csv, 200 per class of
    validation.csv for validation, and test.csv (872 rows, the GLUE dev set) for test."""
    root = datasets / "sst2"
    train = per_class(load_data(root / "train.csv"), 1000)
    val = per_class(load_data(root / "validation.csv"), 200)
    return train, val, load_data(root / "test.csv")


def digits(datasets: Path = DATASETS) -> tuple[LabelledData, LabelledData, LabelledData]:
    """The MNIST half of mnist_usps_16x16 (200 16x16 digits per class), far from ImageNet
    photos: 140 per class to train, 20 to validate, 40 to test."""
    return tuple(
        split_per_class(load_data(datasets / "mnist_usps_16x16" / "mnist"), [140, 20, None])
    )


TASKS = {"flowers": flowers, "sst2": sst2, "digits": digits}
