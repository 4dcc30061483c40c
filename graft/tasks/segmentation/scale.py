"""The working scale of a segmentation model: at what resolution it sees the images.

By default every image's shorter side is resized to the crop (``--image-size``): photos of
people or objects keep their shapes at 256 px and train and predict fast. Two kinds of data
keep each image's own resolution instead:

- large images (slides, scenes: a median shorter side of :data:`NATIVE_RATIO` crops or more),
  trained on crops and segmented by tiles;
- thin structures (membranes, vessels, cracks): resizing would leave the thinnest labelled
  class under :data:`LEAST_WIDTH` pixels wide. These train on crops as large as the images'
  shorter side, up to :data:`THIN_CROP_RATIO` times ``--image-size`` (whole slices of 512 px
  at the default 256), and predict by tiles twice that. Measured on slices of 512 px with cell
  walls 2 and 3 px wide (``bench/thin_structures.py``, bench/RESULTS.md): whole slices at
  their own resolution reached a mean IoU of 0.747 and 0.832 where slices resized to 256 px
  reached 0.694 and 0.773 (and 0.703 at 2 px given four times the epochs, so resolution, not
  the fourfold compute, is what counts), at about 4.3x the time; crops of 256 px at the
  slices' own resolution, which see a quarter of a slice each, did worse than resizing
  (0.480, 0.769).

The width of a class is measured on a sample of the training masks as twice its pixels over
its boundary pixels: a band ``w`` pixels wide gives ``w``, a disc its radius. The class that
covers most pixels (the background, or cells between membranes) is left out. The choice and its
reason are logged (:func:`working_scale`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from graft.tasks.segmentation.batches import Scale
    from graft.tasks.segmentation.read import SegmentationData

log = logging.getLogger("graft")

#: Training images whose median shorter side is at least this many crops are segmented at
#: their own resolution (by tiles), not resized.
NATIVE_RATIO = 4
#: Prediction tiles are this many crops wide; neighbours share a quarter of a tile.
TILE_RATIO = 2
#: The fewest pixels the thinnest labelled structure may be wide after resizing; thinner, and
#: the images keep their own resolution.
LEAST_WIDTH = 3.0
#: Thin structures at their own resolution train on crops of the images' shorter side, up to
#: this many times ``--image-size``.
THIN_CROP_RATIO = 2
#: Training masks sampled to measure the classes' widths.
WIDTH_SAMPLE = 32


def class_widths(train: SegmentationData, seed: int = 0) -> dict[str, float]:
    """The width in pixels of each class but the one that covers most pixels, on at most
    :data:`WIDTH_SAMPLE` training masks: twice its pixels over its boundary pixels (those
    with a 4-neighbour of another value; the image's edge is no boundary)."""
    count = len(train.classes)
    chosen = np.arange(len(train))
    if len(chosen) > WIDTH_SAMPLE:
        chosen = np.random.default_rng(seed).choice(chosen, WIDTH_SAMPLE, replace=False)
    pixels = np.zeros(count, dtype=np.int64)
    boundary = np.zeros(count, dtype=np.int64)
    for index in chosen:
        mask = np.asarray(train.load_mask(int(index)))
        edge = np.zeros(mask.shape, dtype=bool)
        edge[1:] |= mask[1:] != mask[:-1]
        edge[:-1] |= mask[:-1] != mask[1:]
        edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
        edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
        known = mask < count
        values = mask[known].astype(np.int64)
        pixels += np.bincount(values, minlength=count)[:count]
        boundary += np.bincount(mask[known & edge].astype(np.int64), minlength=count)[:count]
    widest = int(pixels.argmax())
    return {
        train.classes[c]: float(2.0 * pixels[c] / boundary[c])
        for c in range(count)
        if c != widest and boundary[c] > 0
    }


def working_scale(train: SegmentationData, crop: int, ignore_index: int, seed: int = 0) -> Scale:
    """The working scale of a model trained on ``train`` with crops of ``crop`` pixels: the
    shorter side resized to the crop, or each image's own resolution when the training images
    are large or their thinnest class would be under :data:`LEAST_WIDTH` pixels wide once
    resized (see the module docstring); tiles of :data:`TILE_RATIO` crops overlapping by a
    quarter. The log says which, and why."""
    from graft.tasks.segmentation.batches import Scale

    shorter = float(np.median([min(size) for size in train.sizes] or [crop]))
    tile = TILE_RATIO * crop
    if shorter >= NATIVE_RATIO * crop:
        log.info(
            "the training images are large (median shorter side %d px, crops of %d): they are "
            "segmented at their own resolution, by tiles",
            int(shorter),
            crop,
        )
        return Scale(crop, None, tile, tile // 4, ignore_index)
    factor = crop / shorter
    widths = class_widths(train, seed) if factor < 1 else {}
    thinnest = min(widths.items(), key=lambda item: item[1]) if widths else None
    if thinnest is not None and thinnest[1] * factor < LEAST_WIDTH:
        name, width = thinnest
        side = max(crop, min(int(shorter) // 32 * 32, THIN_CROP_RATIO * crop))
        log.info(
            "class %r is about %.1f px wide: resized to a shorter side of %d px it would be "
            "%.1f px, so the images keep their own resolution (median shorter side %d px), "
            "in training crops of %d px and tiles of %d",
            name,
            width,
            crop,
            width * factor,
            int(shorter),
            side,
            TILE_RATIO * side,
        )
        return Scale(side, None, TILE_RATIO * side, TILE_RATIO * side // 4, ignore_index)
    kept = (
        ""
        if thinnest is None
        else (f"; the thinnest class, {thinnest[0]!r}, stays {thinnest[1] * factor:.0f} px wide")
    )
    log.info("images resized to a shorter side of %d px (median %d px%s)", crop, int(shorter), kept)
    return Scale(crop, crop, tile, tile // 4, ignore_index)
