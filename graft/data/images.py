"""Opening image files the way every backbone expects them: RGB, upright, bounded in size."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
#: Pixels above which an image is refused (PIL's decompression-bomb guard, made an error).
MAX_IMAGE_PIXELS = 89_478_485


class UnreadableImage(Exception):
    """An image file cannot be decoded; the message says why."""


#: What PIL raises on a file it cannot read: not an image, truncated, a header past its
#: decompression-bomb limit (turned into :class:`UnreadableImage` by every reader).
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombWarning,
    Image.DecompressionBombError,
)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def open_rgb(path: str | Path | Image.Image) -> Image.Image:
    """Decode ``path`` fully, apply its EXIF orientation and convert any mode to RGB (an
    image decoded already, as :func:`decode_rgb` gives a served upload, is taken as it is:
    converted to RGB only if it is not).

    Raises:
        UnreadableImage: the file is empty, not an image, truncated, or over the size limit.
    """
    if isinstance(path, Image.Image):
        return _to_rgb(path)
    path = Path(path)
    try:
        empty = path.stat().st_size == 0
    except OSError as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None
    return _decoded(path, empty)


def decode_rgb(content: bytes, name: str = "the upload") -> Image.Image:
    """:func:`open_rgb` of an encoded image held in memory (an upload: no file written);
    ``name`` stands for it in the message of :class:`UnreadableImage`."""
    buffer = io.BytesIO(content)
    try:
        return _decoded(buffer, not content)
    except UnreadableImage as error:
        raise UnreadableImage(str(error).replace(repr(buffer), repr(name))) from None


def _decoded(source: Path | io.BytesIO, empty: bool) -> Image.Image:
    """The RGB image of ``source``, fully decoded and upright (see :func:`open_rgb`)."""
    try:
        if empty:
            raise UnreadableImage("the file is empty")
        with Image.open(source) as image:
            check_declared_size(image.width, image.height)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except UnreadableImage:
        raise
    except DECODE_ERRORS as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None


def check_declared_size(width: int, height: int) -> None:
    """Refuse, before decoding, an image whose header declares more pixels than PIL's
    decompression-bomb limit (with PIL's message) or than :data:`MAX_IMAGE_PIXELS`.

    An explicit check rather than PIL's DecompressionBombWarning made an error: warnings'
    filters are global to the process, so ``warnings.catch_warnings`` in one worker thread
    changed what the others saw (a soak counted uploads as 0 pixels).

    Raises:
        UnreadableImage: the declared size is over a limit.
    """
    pixels = max(1, width) * max(1, height)
    limit = Image.MAX_IMAGE_PIXELS
    if limit and pixels > limit:
        raise UnreadableImage(
            f"Image size ({pixels} pixels) exceeds limit of {limit} pixels, "
            "could be decompression bomb DOS attack."
        )
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableImage(f"{width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS:,}")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("P", "PA") or "A" in image.getbands():
        # Composite transparency over white rather than letting it turn black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")
