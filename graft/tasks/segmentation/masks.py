"""Masks as images: class indices written as palette PNGs, and an image with its mask blended.

A mask PNG holds the class index of every pixel (mode ``P``): any program reads the indices
back, and viewers show each class in its colour. The colours are the data's own when its masks
were coded by colour (a class file with ``r, g, b``), else the PASCAL VOC colour map (class 0
black, then red, green, ...); the ignore index 255 is VOC's cream.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

Color = tuple[int, int, int]
#: The colour of the ignore index (PASCAL VOC's "void").
IGNORE_COLOR = (224, 224, 192)
#: How opaque a class colour lies over the image in an overlay.
OVERLAY_ALPHA = 0.5


def voc_color(index: int) -> Color:
    """The PASCAL VOC colour of class ``index`` (bits of the index spread over r, g, b)."""
    red = green = blue = 0
    for shift in range(8):
        red |= ((index >> 0) & 1) << (7 - shift)
        green |= ((index >> 1) & 1) << (7 - shift)
        blue |= ((index >> 2) & 1) << (7 - shift)
        index >>= 3
    return red, green, blue


def palette(count: int, colors: Sequence[Sequence[int]] | None = None) -> list[Color]:
    """256 colours: the ``count`` classes' (``colors``, else VOC's), then VOC's, with the
    ignore colour at 255."""
    chosen = [tuple(int(c) for c in color) for color in (colors or [])][:count]
    full = chosen + [voc_color(i) for i in range(len(chosen), 256)]
    full[255] = IGNORE_COLOR
    return full  # type: ignore[return-value]


def mask_image(mask: np.ndarray, colors: Sequence[Color], transparent: int | None = None):
    """A palette image of the class indices in ``mask`` ``[H, W]`` (values above 255 are
    shown as the ignore colour); ``transparent``: an index drawn see-through (the
    background, in an overlay a browser draws)."""
    values = np.asarray(mask)
    if values.dtype != np.uint8:
        values = np.where(values > 255, 255, values).astype(np.uint8)
    image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
    image.putpalette([c for color in colors for c in color])
    if transparent is not None:
        image.info["transparency"] = transparent
    return image


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG (its palette and transparency kept)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def data_uri(image: Image.Image) -> str:
    """``image`` as a ``data:image/png;base64,...`` URI (what the service and report embed)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def shrunk(mask: np.ndarray, longest: int) -> np.ndarray:
    """``mask`` resized (nearest neighbour: indices stay indices) so its longer side is at
    most ``longest``."""
    mask = np.asarray(mask)
    if mask.dtype != np.uint8:
        mask = np.where(mask > 255, 255, mask).astype(np.uint8)
    height, width = mask.shape[:2]
    factor = longest / max(height, width)
    if factor >= 1:
        return mask
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))


def overlay(image: Image.Image, mask: np.ndarray, colors: Sequence[Color], background: int = 0):
    """``image`` (RGB) with each pixel not of class ``background`` tinted by its class colour
    (:data:`OVERLAY_ALPHA`); the mask is resized to the image when their sizes differ."""
    image = image.convert("RGB")
    values = np.asarray(mask)
    if values.shape != (image.height, image.width):
        values = np.asarray(
            Image.fromarray(values.astype(np.uint8)).resize(image.size, Image.Resampling.NEAREST)
        )
    table = np.asarray(colors, dtype=np.float32)
    pixels = np.asarray(image, dtype=np.float32)
    tinted = (1 - OVERLAY_ALPHA) * pixels + OVERLAY_ALPHA * table[np.minimum(values, 255)]
    shown = np.where((values != background)[..., None], tinted, pixels)
    return Image.fromarray(shown.round().astype(np.uint8))


def free_path(folder: Path, stem: str, suffix: str = ".png") -> Path:
    """``folder/stem.png``, or ``stem_1.png``, ``stem_2.png``, ... when it exists: a file a user
    has is never replaced."""
    path, number = folder / f"{stem}{suffix}", 0
    while path.exists():
        number += 1
        path = folder / f"{stem}_{number}{suffix}"
    return path
