"""Property-based tests of the loaders (hypothesis): any table or folder either loads to a
consistent dataset or raises graft's own DataError, never another exception."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from graft.data import LabelledData, load_data
from graft.errors import DataError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMN_NAMES = st.sampled_from(["text", "label", "sentence", "category", "rating", "x", ""])
CELLS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["pos", "neg", "1", "0", "nan", "", "a;b", "  ", '"', "\n"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


def assert_consistent(data: LabelledData) -> None:
    assert len(data.items) == len(data) > 0
    assert all(isinstance(item, str) for item in data.items)
    assert data.labels is not None and len(data.labels) == len(data.items)
    if data.task == "multiclass":
        assert data.labels.min() >= 0 and data.labels.max() < len(data.classes)
        assert len(set(data.classes)) == len(data.classes)
    elif data.task == "multilabel":
        assert data.labels.shape == (len(data), len(data.classes))
    else:
        assert np.isfinite(data.labels).all()


def load_or_data_error(path: Path) -> None:
    try:
        data = load_data(path)
    except DataError as error:
        assert str(error)  # a message, naming what is wrong
        return
    assert_consistent(data)


@SETTINGS
@given(
    header=st.lists(COLUMN_NAMES, min_size=1, max_size=4),
    rows=st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=12),
)
def test_any_csv_table_loads_consistently_or_raises_a_data_error(header, rows):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        path.write_text(buffer.getvalue(), encoding="utf-8")
        load_or_data_error(path)


@SETTINGS
@given(content=st.binary(max_size=300))
def test_any_bytes_named_csv_load_or_raise_a_data_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        path.write_bytes(b"text,label\n" + content)
        load_or_data_error(path)


def _png(colour: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (colour, 255 - colour, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


FILE_CONTENT = st.one_of(
    st.integers(0, 255).map(_png),
    st.binary(max_size=64),
    st.just(b""),
    st.text(max_size=30).map(str.encode),
)
FILE_NAMES = st.sampled_from(
    ["a.png", "b.jpg", ".hidden.png", ".DS_Store", "Thumbs.db", "notes.txt", "c.PNG", "d"]
)


@SETTINGS
@given(
    tree=st.dictionaries(
        st.sampled_from(["cats", "dogs", "birds", ".git", "deep/inner"]),
        st.dictionaries(FILE_NAMES, FILE_CONTENT, max_size=4),
        max_size=3,
    )
)
def test_any_folder_of_files_loads_consistently_or_raises_a_data_error(tree):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        root.mkdir()
        for class_name, files in tree.items():
            (root / class_name).mkdir(parents=True, exist_ok=True)
            for name, content in files.items():
                (root / class_name / name).write_bytes(content)
        load_or_data_error(root)
