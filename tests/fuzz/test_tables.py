"""The table and folder readers of :mod:`graft.data.sources` and :mod:`graft.data.frames`
fuzzed (the consistency of what loads is :mod:`tests.data.test_loader_properties`'s): CSV,
TSV, JSONL and Parquet tables of random, truncated and non-UTF-8 bytes, cells of any text
read back as written, wrong JSON types and deep nesting, Parquet columns of any Arrow type,
image paths with ``..``, absolute paths and symlinks, class folders with symlinks in and out
and names that are not UTF-8. Each reads, or raises graft's error in one line naming the
file, or skips and counts the item; the regression tests below are named for what the fuzzing
found."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from graft.data import load_data
from graft.data.sources import load_inputs, read_table
from graft.errors import DataError
from tests.fuzz.common import FUZZ, JSONISH, NAMES, reads_or_refuses

SUFFIXES = st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"])
#: Cells with the characters a line splitter cuts at, quotes, delimiters and NULs.
CELL = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x1c", "a\u2028b", "\x0c", "\r", "\n", '"', ",", "\t", "\x00", " ", ""]),
)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 99, 199)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


@FUZZ
@given(content=st.binary(max_size=400), suffix=SUFFIXES, cut=st.integers(0, 400))
def test_tables_of_random_and_truncated_bytes(content, suffix, cut):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"train{suffix}"
        file.write_bytes((b"text,label\n" + content)[: cut + 11])
        reads_or_refuses(lambda: load_data(file), file)
        reads_or_refuses(lambda: load_inputs([file], "text"), file)


@FUZZ
@given(
    header=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3, unique=True),
    rows=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=6),
    delimiter=st.sampled_from([",", "\t"]),
)
def test_csv_cells_read_back_as_written(header, rows, delimiter):
    """Whatever csv.writer wrote, read_table reads the same cells (a row of blank cells
    only, like a blank line, is left out)."""
    header = [h.strip() or f"c{i}" for i, h in enumerate(header)]
    if len(set(header)) < len(header) or any(set(h) & set('"\r\n\x00' + delimiter) for h in header):
        return
    rows = [row[: len(header)] for row in rows]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter).writerows([header, *rows])
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / ("t.csv" if delimiter == "," else "t.tsv")
        file.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        read = reads_or_refuses(lambda: read_table(file), file)
    assert read is not None, "a table csv.writer wrote was refused"
    got, columns = read
    assert columns == header
    kept = [row for row in rows if "".join(row).strip()]
    assert [[row[c] for c in header] for row in got] == kept


@FUZZ
@given(records=st.lists(JSONISH, min_size=1, max_size=5), depth=st.sampled_from([0, 5, 10**5]))
def test_jsonl_of_any_json_and_deep_nesting(records, depth):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "train.jsonl"
        lines = [json.dumps(r, allow_nan=True) for r in records]
        lines.append('{"text": ' + "[" * depth + "]" * depth + ', "label": "a"}' if depth else "")
        file.write_text("\n".join(lines))
        reads_or_refuses(lambda: load_data(file), file)


ARROW_VALUES = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=5),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), min_size=1, max_size=5),
    st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=5),
    st.lists(st.one_of(st.none(), st.binary(max_size=8)), min_size=1, max_size=5),
    st.lists(st.lists(st.text(max_size=4), max_size=3), min_size=1, max_size=5),
    st.lists(st.fixed_dictionaries({"bytes": st.binary(max_size=8)}), min_size=1, max_size=5),
    st.lists(st.fixed_dictionaries({"a": st.integers(0, 9)}), min_size=1, max_size=5),
)


@FUZZ
@given(columns=st.dictionaries(st.sampled_from(["text", "label", "image", "x"]), ARROW_VALUES,
                               min_size=1, max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 2000)))  # fmt: skip
def test_parquet_of_any_arrow_type_and_truncated(columns, cut):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    size = min(len(v) for v in columns.values())
    table = pa.table({name: values[:size] for name, values in columns.items()})
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "train.parquet"
        pq.write_table(table, file)
        if cut is not None:
            file.write_bytes(file.read_bytes()[:cut])
        reads_or_refuses(lambda: load_data(file), file)


PATHS = st.one_of(
    NAMES, st.sampled_from(["img.png", "./img.png", "sub/../img.png", "link_in.png",
                            "link_out.png", "link_dir/img.png", "\udcff.png", "/tmp"]),
)  # fmt: skip


@FUZZ
@given(paths=st.lists(PATHS, min_size=1, max_size=6))
def test_image_tables_with_escaping_paths_and_symlinks(paths):
    """Paths out of the table's folder (``..``, absolute, a symlink named from outside) are
    skipped and counted; a symlink inside the folder is read as its target."""
    with tempfile.TemporaryDirectory() as outside, tempfile.TemporaryDirectory() as folder:
        (Path(outside) / "secret.png").write_bytes(PNG)
        root = Path(folder)
        (root / "img.png").write_bytes(PNG)
        (root / "link_in.png").symlink_to(root / "img.png")
        (root / "link_out.png").symlink_to(Path(outside) / "secret.png")
        (root / "link_dir").symlink_to(outside, target_is_directory=True)
        file = root / "train.csv"
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(["image", "label"])
        writer.writerows([p, "ab"[i % 2]] for i, p in enumerate(paths))
        file.write_bytes(buffer.getvalue().encode("utf-8", "surrogateescape"))
        data = reads_or_refuses(lambda: load_data(file, image_column="image"), file)
    if data is not None:
        for item in data.items:
            assert Path(item).name in ("img.png", "secret.png")  # read or followed, no other


FOLDER_NAMES = st.sampled_from(
    ["a.txt", "b.png", "\udcff.txt", "\udce9t\udce9.png", ".hidden.txt", "c.jpg", "d"]
)


@FUZZ
@given(
    tree=st.dictionaries(
        st.sampled_from(["cats", "dogs", "\udcffbirds", "loop", "out"]),
        st.dictionaries(FOLDER_NAMES, st.one_of(st.just(PNG), st.binary(max_size=40)),
                        max_size=3),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_class_folders_with_symlinks_and_undecodable_names(tree):
    with tempfile.TemporaryDirectory() as outside, tempfile.TemporaryDirectory() as folder:
        (Path(outside) / "far.txt").write_bytes(b"\xff\xfe far away")
        root = Path(folder) / "data"
        root.mkdir()
        for name, files in tree.items():
            if name == "loop":
                (root / name).symlink_to(root, target_is_directory=True)
                continue
            if name == "out":
                (root / name).symlink_to(outside, target_is_directory=True)
                continue
            for file, content in files.items():
                target = os.fsencode(root / name / file)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(content)
        reads_or_refuses(lambda: load_data(root), root)
        reads_or_refuses(lambda: load_inputs([root], "text"), root)


# Regressions (what the fuzzing found) ------------------------------------------------------------


@pytest.mark.parametrize("line", ["\n", ",\n", "\t\n", '"",""\n'])
def test_regression_two_million_empty_rows_answer_quickly(tmp_path, line, caplog):
    """A table of a header and two million empty rows is refused in one line within seconds:
    blank rows are left out as they are read, and skipped rows are logged ten at most."""
    file = tmp_path / ("t.tsv" if line == "\t\n" else "t.csv")
    header = "text\tlabel\n" if line == "\t\n" else "text,label\n"
    file.write_text(header + line * 2_000_000 + "a,x\n".replace(",", header[4]))
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="graft"), pytest.raises(DataError) as error:
        load_data(file)
    assert time.monotonic() - began < 8
    assert str(error.value).startswith(str(file)) and "\n" not in str(error.value)
    assert len(caplog.records) <= 12


def test_regression_csv_cell_with_a_file_separator_stays_one_cell(tmp_path):
    """``str.splitlines`` cut rows at \\x1c, \\x0c and U+2028 inside a cell."""
    file = tmp_path / "t.csv"
    file.write_text("text,label\nup\x1cdown,a\nleft\u2028right,b\n", encoding="utf-8")
    rows, _ = read_table(file)
    assert [row["text"] for row in rows] == ["up\x1cdown", "left\u2028right"]


def test_regression_csv_cell_over_128_kib_is_read(tmp_path):
    """csv's field size limit raised ``_csv.Error``, not graft's error."""
    file = tmp_path / "t.csv"
    file.write_text("text,label\n" + "x" * 300_000 + ",a\nb,c\n")
    rows, _ = read_table(file)
    assert len(rows[0]["text"]) == 300_000


def test_regression_rows_are_numbered_by_their_line_after_blank_lines(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("text,label\n\n\n,\nhello,a\nbye,b\n,b\n")
    data = load_data(file)
    assert [where for where, _ in data.skipped] == [f"{file}, row 7"]


def test_regression_deeply_nested_jsonl_is_refused_in_one_line(tmp_path):
    """``json.loads`` of a deeply nested line raised RecursionError."""
    file = tmp_path / "t.jsonl"
    file.write_text('{"text": "a", "label": "x"}\n{"text": ' + "[" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: .*nested"):
        read_table(file)


def test_regression_warn_skipped_logs_ten_and_counts_the_rest(tmp_path, caplog):
    file = tmp_path / "t.csv"
    file.write_text("text,label\n" + "a,\n" * 50 + "b,x\nc,y\n")
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = load_data(file)
    assert len(data.skipped) == 50
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 11 and "40 more" in skipped[-1]


def test_regression_image_path_with_a_nul_is_skipped_not_a_value_error(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    file = tmp_path / "t.csv"
    file.write_text("image,label\na.png,x\nb.png,y\nnul\x00.png,x\n")
    data = load_data(file)
    assert len(data) == 2 and "not a path" in data.skipped[0][1]
    with pytest.raises(DataError, match=r"t\.csv, row 4: .* is not a path"):
        load_inputs([file], "image")


def test_regression_predicting_an_empty_table_names_it(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("text\n")
    with pytest.raises(DataError, match=r"t\.csv: the table holds no rows"):
        load_inputs([file], "text")


def test_regression_predicting_an_empty_folder_names_it(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(DataError, match=rf"^{tmp_path}: nothing to predict"):
        load_inputs([tmp_path], "text")


def test_regression_carriage_return_in_a_quoted_cell_stays_one(tmp_path):
    """Reading the file as text turned a CR inside a quoted cell into a line feed."""
    file = tmp_path / "t.csv"
    file.write_bytes(b'text,label\r\n"up\rdown",a\r\n')
    rows, _ = read_table(file)
    assert rows[0]["text"] == "up\rdown" and rows[0]["label"] == "a"


def test_regression_a_column_named_with_a_line_break_keeps_the_message_one_line(tmp_path):
    file = tmp_path / "t.jsonl"
    file.write_text('{"\\n": null}\n')
    with pytest.raises(DataError) as error:
        load_data(file)
    assert "among '\\n'" in str(error.value) and "\n" not in str(error.value)
