"""Dense prediction of images of any size: whole, or by overlapping tiles blended back.

A fully convolutional network segments an image of any size, but its memory grows with the
image: a microscopy slide or a satellite scene is segmented by tiles instead. :func:`predict_tiled`
cuts the (normalised) image into square tiles that overlap, runs them in small batches, and
blends their logits back with weights that fall linearly towards each tile's edges (where a
tile sees least context), so every pixel's logits are a weighted mean over the tiles covering
it and no seam shows. :func:`predict_whole` runs the image at once. Both pad the image's right
and bottom to a multiple of :data:`ALIGN` (the encoders halve the size five times) and crop
the padding off the logits; tiles start at multiples of it too, so a tile sees the pixel grid
exactly as the whole image does and, away from tile borders, both give the same logits.

``logits_of`` is whatever maps a batch of images ``[n, 3, h, w]`` to logits ``[n, classes, h,
w]``: the PyTorch network, or an exported model (which takes tiles of one fixed size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

#: Sides and tile offsets are multiples of this (the stride of an encoder's coarsest map).
ALIGN = 32
#: Tiles run through the network this many at a time.
TILE_BATCH = 4
#: The smallest blending weight (at a tile's very edge): never zero, so a pixel that only one
#: tile covers keeps that tile's logits.
EDGE_WEIGHT = 1e-3

Logits = Callable[[torch.Tensor], torch.Tensor]


def padded_side(side: int, align: int = ALIGN) -> int:
    """``side`` rounded up to a multiple of ``align``."""
    return -(-side // align) * align


def pad_to(
    image: torch.Tensor, height: int, width: int, fill: Sequence[float] | None = None
) -> torch.Tensor:
    """``image`` ``[3, h, w]`` padded on its right and bottom to ``height`` x ``width`` with
    ``fill`` (a value per channel: black after normalising, as the training crops were padded;
    None: zeros)."""
    padded = F.pad(image, (0, width - image.shape[-1], 0, height - image.shape[-2]))
    if fill is not None and padded.shape[-2:] != image.shape[-2:]:
        values = torch.as_tensor(fill, dtype=padded.dtype, device=padded.device)[:, None, None]
        outside = torch.ones_like(padded[0], dtype=torch.bool)
        outside[: image.shape[-2], : image.shape[-1]] = False
        padded = torch.where(outside, values, padded)
    return padded


def predict_whole(
    logits_of: Logits, image: torch.Tensor, fill: Sequence[float] | None = None
) -> torch.Tensor:
    """Logits ``[classes, h, w]`` of ``image`` ``[3, h, w]`` in one pass (padding: ``fill``,
    see :func:`pad_to`)."""
    height, width = image.shape[-2:]
    padded = pad_to(image, padded_side(height), padded_side(width), fill)
    return logits_of(padded[None])[0, :, :height, :width]


def tile_starts(side: int, tile: int, stride: int) -> list[int]:
    """Where tiles of ``tile`` pixels start along a padded ``side`` (a multiple of
    :data:`ALIGN`, at least ``tile``), ``stride`` apart, the last flush with the end (one tile
    when it covers the side)."""
    starts = list(range(0, side - tile, stride))
    return starts + [side - tile]


def ramp(size: int, device: torch.device) -> torch.Tensor:
    """Blending weights along a tile's side: highest in the middle, falling linearly to
    :data:`EDGE_WEIGHT` at both ends."""
    position = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    return torch.minimum(position, size - position).div(size / 2).clamp(min=EDGE_WEIGHT)


def predict_tiled(
    logits_of: Logits,
    image: torch.Tensor,
    tile: int,
    overlap: int,
    *,
    batch: int = TILE_BATCH,
    pad_small: bool = True,
    fill: Sequence[float] | None = None,
) -> torch.Tensor:
    """Logits ``[classes, h, w]`` of ``image`` ``[3, h, w]`` from overlapping tiles of ``tile``
    pixels (a multiple of :data:`ALIGN`), ``overlap`` pixels shared by neighbours (rounded so
    that tiles start at multiples of :data:`ALIGN`), blended back (see the module).

    Along a side shorter than a tile, the tile is padded up to its size (``pad_small``: an
    exported model takes tiles of one size) or cut to the padded side (the image then gets
    the padding a whole-image pass gives it, so both agree there too); padding is ``fill``
    (see :func:`pad_to`).
    """
    if tile % ALIGN or tile <= 0:
        raise ValueError(f"the tile side must be a positive multiple of {ALIGN}, got {tile}")
    height, width = image.shape[-2:]
    padded_h, padded_w = padded_side(height), padded_side(width)
    if pad_small:
        padded_h, padded_w = max(padded_h, tile), max(padded_w, tile)
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    padded = pad_to(image, padded_h, padded_w, fill)
    stride = max(ALIGN, (tile - overlap) // ALIGN * ALIGN)
    corners = [
        (top, left)
        for top in tile_starts(padded_h, tile_h, stride)
        for left in tile_starts(padded_w, tile_w, stride)
    ]
    weight = ramp(tile_h, image.device)[:, None] * ramp(tile_w, image.device)[None, :]
    total = weight.new_zeros((padded_h, padded_w))
    blended = None
    for start in range(0, len(corners), batch):
        group = corners[start : start + batch]
        tiles = torch.stack([padded[:, t : t + tile_h, x : x + tile_w] for t, x in group])
        logits = logits_of(tiles).float()
        if blended is None:
            blended = logits.new_zeros((logits.shape[1], padded_h, padded_w))
        for (top, left), part in zip(group, logits, strict=True):
            blended[:, top : top + tile_h, left : left + tile_w] += part * weight
            total[top : top + tile_h, left : left + tile_w] += weight
    return (blended / total)[:, :height, :width]


def tiles_of(
    image: torch.Tensor, tile: int, overlap: int, fill: Sequence[float] | None = None
) -> torch.Tensor:
    """The tiles :func:`predict_tiled` would run for ``image`` ``[3, h, w]``, stacked ``[n, 3,
    tile, tile]`` (what an export's parity check runs)."""
    found = []
    predict_tiled(lambda tiles: _keep(found, tiles), image, tile, overlap, fill=fill)
    return torch.cat(found)


def _keep(found: list, tiles: torch.Tensor) -> torch.Tensor:
    found.append(tiles)
    return tiles.new_zeros((len(tiles), 1, *tiles.shape[-2:]))
