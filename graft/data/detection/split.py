"""A seeded train/validation split of detection data by image (never by box)."""

from __future__ import annotations

import numpy as np

from graft.data.detection.target import DetectionData
from graft.errors import DataError


def split_images(
    data: DetectionData, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of training and validation images: a seeded random ``val_fraction`` of
    the images (at least one on each side) goes to validation with all of its objects, so no
    image is seen on both sides.

    Raises:
        DataError: the fraction is not between 0 and 1, or there are fewer than 2 images.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
    if len(data) < 2:
        raise DataError(f"{data.source}: a validation split needs at least 2 images")
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = min(max(1, round(len(data) * val_fraction)), len(data) - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
