"""A seeded, stratified train/validation split, for when the user gives no validation data."""

from __future__ import annotations

import numpy as np

from graft.data.dataset import LabelledData
from graft.errors import DataError


def stratified_split(
    data: LabelledData, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train and validation examples, ``val_fraction`` of each class to validation.

    Every class keeps at least one example on each side.

    Raises:
        DataError: a class has fewer than 2 examples, so it cannot appear on both sides.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label, name in enumerate(data.classes):
        members = np.flatnonzero(data.labels == label)
        if len(members) == 0:
            continue
        if len(members) < 2:
            raise DataError(
                f"{data.source}: class {name!r} has {len(members)} example; a validation split "
                "needs at least 2 per class (add examples, or give validation data with --val)"
            )
        members = rng.permutation(members)
        n_val = min(max(1, round(len(members) * val_fraction)), len(members) - 1)
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return np.sort(np.asarray(train)), np.sort(np.asarray(val))


def random_split(
    data: LabelledData, val_fraction: float, seed: int, unit: str = "examples"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train and validation examples: a seeded random ``val_fraction`` to validation.

    For multi-label and regression data, which have no single class to stratify by, and for
    detection and segmentation data, split by image (``unit`` names what is split in errors).

    Raises:
        DataError: too few examples to keep at least one on each side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
    if len(data) < 2:
        raise DataError(f"{data.source}: a validation split needs at least 2 {unit}")
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = min(max(1, round(len(data) * val_fraction)), len(data) - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_val_split(
    data: LabelledData, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The split for ``data``'s task: stratified for multiclass, random for the others."""
    split = stratified_split if data.task == "multiclass" else random_split
    return split(data, val_fraction, seed)
