"""The working scale follows the data: thin structures keep the images' own resolution."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from graft.tasks.segmentation.read import SegmentationData
from graft.tasks.segmentation.scale import class_widths, working_scale


def banded(width: int, every: int = 40, size: int = 512) -> np.ndarray:
    """Background with horizontal bands of class 1, ``width`` pixels wide."""
    mask = np.zeros((size, size), dtype=np.uint8)
    for top in range(every // 2, size - width, every):
        mask[top : top + width] = 1
    return mask


def slices(width: int, count: int = 6) -> SegmentationData:
    masks = [functools.partial(banded, width) for _ in range(count)]
    images = [f"slice{i}.png" for i in range(count)]
    return SegmentationData(images, masks, ["cell", "membrane"], sizes=[(512, 512)] * count)


@pytest.mark.parametrize("width", [2, 5, 12])
def test_a_band_is_as_wide_as_it_is_drawn(width):
    assert class_widths(slices(width)) == pytest.approx({"membrane": width})


def test_membranes_keep_full_resolution_and_thick_bands_are_resized(caplog):
    with caplog.at_level(logging.INFO, logger="graft"):
        thin = working_scale(slices(4), 256, 255)  # 4 px at 512: 2 px at 256
    assert thin.short_side is None and thin.tile == 512
    assert "'membrane' is about 4.0 px wide" in caplog.text and "own resolution" in caplog.text
    thick = working_scale(slices(12), 256, 255)  # 6 px once resized
    assert thick.short_side == 256
    assert working_scale(slices(4), 512, 255).short_side == 512  # not downscaled: resized
