"""The tagging readers (CoNLL columns, JSON Lines spans), mask PNGs and audio files fuzzed:
random and truncated bytes, wrong JSON types, spans out of range, masks of any mode and size,
zero-length audio and a WAV header claiming 10 hours. Each reads, or raises graft's error
(masks and audio: the UnreadableImage / UnreadableAudio their callers turn into one)."""

from __future__ import annotations

import io
import json
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from graft.data.audio import UnreadableAudio, decode_audio
from graft.data.images import UnreadableImage
from graft.tasks.segmentation.read import read_mask
from graft.tasks.tagging.read import read_tagged
from tests.fuzz.common import FUZZ, JSONISH, NUMBERS, reads_or_refuses

TOKENS = st.sampled_from(
    ["EU", "rejects", "B-ORG", "I-PER", "O", "S-LOC", "E-X", "-DOCSTART-", "\t", ""]
)
CONLL_LINE = st.one_of(st.lists(TOKENS, max_size=4).map(" ".join), st.text(max_size=20))
SPAN = st.one_of(
    st.fixed_dictionaries(
        {"start": NUMBERS, "end": NUMBERS, "label": st.one_of(st.text(max_size=5), NUMBERS)}
    ),
    st.lists(st.one_of(NUMBERS, st.text(max_size=4)), max_size=4),
    JSONISH,
)
JSONL_RECORD = st.one_of(
    st.fixed_dictionaries(
        {"text": st.one_of(st.text(max_size=30), JSONISH)},
        optional={"entities": st.one_of(st.lists(SPAN, max_size=3), JSONISH),
                  "tokens": st.one_of(st.lists(st.text(max_size=5), max_size=4), JSONISH),
                  "tags": st.one_of(st.lists(TOKENS, max_size=4), JSONISH)},
    ),
    JSONISH,
)  # fmt: skip


@FUZZ
@given(
    lines=st.lists(CONLL_LINE, min_size=1, max_size=8), column=st.sampled_from([None, 0, 1, -1, 5])
)
def test_conll_columns(lines, column):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "train.conll"
        file.write_text("\n".join(lines))
        reads_or_refuses(lambda: read_tagged(file, label_column=column), file)


@FUZZ
@given(records=st.lists(JSONL_RECORD, min_size=1, max_size=4))
def test_jsonl_spans(records):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "train.jsonl"
        file.write_text("\n".join(json.dumps(r, allow_nan=True) for r in records))
        reads_or_refuses(lambda: read_tagged(file), file)


@FUZZ
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".conll", ".jsonl", ".txt"]))
def test_tagging_random_bytes(content, suffix):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"train{suffix}"
        file.write_bytes(content)
        reads_or_refuses(lambda: read_tagged(file), file)


MODES = st.sampled_from(["1", "L", "P", "I", "I;16", "RGB", "RGBA", "LA", "F"])


@FUZZ
@given(
    mode=MODES,
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    seed=st.integers(0, 2**16),
    colors=st.sampled_from([None, [(0, 0, 0), (255, 0, 0)], [(0, 0, 0)]]),
    binary=st.booleans(),
)
def test_mask_pngs(mode, size, seed, colors, binary):
    values = np.random.default_rng(seed).integers(0, 3, size[::-1]).astype(np.uint8)
    image = Image.fromarray(values * 100, "L").convert(mode)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "mask.png"
        if mode in ("F", "I"):  # PNG holds neither
            file = file.with_suffix(".tif")
        image.save(file)
        mask = reads_or_refuses(lambda: read_mask(file, colors, binary), file, (UnreadableImage,))
        if mask is not None:
            assert mask.shape == size[::-1]


@FUZZ
@given(content=st.binary(max_size=400), cut=st.integers(0, 400))
def test_mask_random_and_truncated_bytes(content, cut):
    buffer = io.BytesIO()
    Image.new("P", (16, 16)).save(buffer, format="PNG")
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "mask.png"
        file.write_bytes(buffer.getvalue()[:cut] + content if cut % 2 else content)
        reads_or_refuses(lambda: read_mask(file, None, False), file, (UnreadableImage,))


def test_a_mask_declaring_a_billion_pixels_is_refused_quickly(tmp_path):
    """Regression (found by the fuzz run): a PNG header claiming 40000 x 40000 pixels (a
    decompression bomb, 100 bytes on disk) raised PIL's DecompressionBombError."""
    file = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    file.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    began = time.monotonic()
    with pytest.raises(UnreadableImage):
        read_mask(file, None, False)
    assert time.monotonic() - began < 2.0


def wav_header(seconds: float, rate: int = 8000, data: bytes = b"\0\0" * 100) -> bytes:
    """A 16-bit mono WAV whose header claims ``seconds`` of audio, followed by ``data``."""
    size = int(seconds * rate * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", min(size + 36, 2**32 - 1)) + b"WAVE" + b"fmt "
            + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + data)  # fmt: skip


@FUZZ
@given(
    content=st.one_of(st.binary(max_size=500), st.just(wav_header(36_000.0))),
    cut=st.integers(0, 600),
    suffix=st.sampled_from([".wav", ".flac", ".mp3", ".ogg"]),
)
def test_audio_files(content, cut, suffix):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"clip{suffix}"
        file.write_bytes(content[:cut])
        wave = reads_or_refuses(lambda: decode_audio(file, 16000), file, (UnreadableAudio,))
        if wave is not None:
            assert wave.ndim == 1 and wave.numel() < 16000 * 60


def test_a_wav_header_claiming_ten_hours_reads_what_is_there(tmp_path):
    file = tmp_path / "long.wav"
    file.write_bytes(wav_header(36_000.0))
    began = time.monotonic()
    wave = decode_audio(file, 8000)
    assert wave.numel() == 100 and time.monotonic() - began < 2.0
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(UnreadableAudio, match="empty"):
        decode_audio(tmp_path / "empty.wav", 8000)
