"""The working scale follows the data: thin structures and large images keep the images' own
resolution."""

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


def test_membranes_keep_full_resolution_in_whole_slices_and_thick_bands_are_resized(caplog):
    """Walls 2 and 3 px wide at 512 px lost 8-10 points of mean IoU resized to 256 px, and crops
    of 256 px at full resolution did worse still (bench/thin_structures.py): thin structures
    train on whole slices of 512 px, predicted in one tile."""
    with caplog.at_level(logging.INFO, logger="graft"):
        thin = working_scale(slices(4), 256, 255)  # 4 px at 512: 2 px at 256
    assert (thin.crop, thin.short_side, thin.tile) == (512, None, 1024)
    assert "'membrane' is about 4.0 px wide" in caplog.text
    assert "own resolution" in caplog.text and "crops of 512 px" in caplog.text
    thick = working_scale(slices(12), 256, 255)  # 6 px once resized
    assert (thick.crop, thick.short_side) == (256, 256)
    assert working_scale(slices(4), 512, 255).short_side == 512  # not downscaled: resized
    assert working_scale(slices(2), 160, 255).crop == 320  # crops up to twice --image-size


def test_large_images_keep_their_own_resolution():
    large = SegmentationData(
        [f"slide{i}.png" for i in range(3)],
        [functools.partial(banded, 4, size=64) for _ in range(3)],
        ["cell", "membrane"],
        sizes=[(1100, 1200)] * 3,
    )
    scale = working_scale(large, 256, 255)
    assert scale.short_side is None and scale.tile == 512
