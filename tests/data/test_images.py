"""Decoding images in several threads at once gives what decoding them one at a time gives:
the pixel limit is checked on the declared size, not by PIL's DecompressionBombWarning made an
error (warnings' filters are global to the process: a soak counted uploads as 0 pixels)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from graft.data.annotations.checks import image_size
from graft.data.images import UnreadableImage, decode_rgb, open_rgb


def header_only_png(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` pixels and holding none (100 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def encoded(mode: str, size: tuple[int, int], fmt: str, color) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def files(tmp_path) -> list[Path]:
    """Ordinary images of several modes, two pixel bombs (over PIL's limit, and over twice
    it), a truncated and an empty file."""
    contents = {
        "rgb.png": encoded("RGB", (31, 17), "PNG", (9, 99, 199)),
        "palette.png": encoded("P", (16, 16), "PNG", 3),
        "alpha.png": encoded("RGBA", (8, 20), "PNG", (1, 2, 3, 100)),
        "gray.jpg": encoded("L", (40, 30), "JPEG", 77),
        "bomb.png": header_only_png(10_000, 10_000),
        "twice.png": header_only_png(20_000, 10_000),
        "cut.png": encoded("RGB", (31, 17), "PNG", (1, 1, 1))[:40],
        "empty.png": b"",
    }
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
    return [tmp_path / name for name in contents]


def outcome(read, path: Path):
    """What ``read(path)`` gives: the pixels' bytes and size, or the refusal's message."""
    try:
        result = read(path)
    except UnreadableImage as error:
        return "refused", str(error)
    if isinstance(result, Image.Image):
        return result.mode, result.size, result.tobytes()
    return result


READERS = {
    "open_rgb": open_rgb,
    "decode_rgb": lambda path: decode_rgb(path.read_bytes(), path.name),
    "image_size": image_size,
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_decoding_in_threads_gives_what_decoding_one_at_a_time_gives(files, reader):
    read = READERS[reader]
    alone = {path: outcome(read, path) for path in files}
    assert alone[files[4]] == (
        "refused",
        "Image size (100000000 pixels) exceeds limit of 89478485 pixels, could be "
        "decompression bomb DOS attack.",
    )
    assert alone[files[5]][0] == "refused" and "200000000 pixels" in alone[files[5]][1]

    def meddle(_):  # what other code does in its own threads (exporters silence warnings)
        for _ in range(20):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")

    work = files * 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # PIL's own, shown once
        with ThreadPoolExecutor(8) as pool:
            meddling = pool.map(meddle, range(len(work)))
            together = list(pool.map(lambda path: outcome(read, path), work))
            list(meddling)
    assert together == [alone[path] for path in work]
