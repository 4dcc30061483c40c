"""The similarity readers fuzzed: BEIR folders (corpus.jsonl, queries.jsonl, qrels/*.tsv) with
malformed qrels rows, unknown ids, non-numeric scores, wrong JSON types, random, truncated and
non-UTF-8 bytes and huge files of empty lines; pair, triplet and scored-pair tables of any
cells. Each reads, or raises graft's error in one line naming the file; the regression tests
below are named for what the fuzzing found."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graft.errors import DataError
from graft.tasks.similarity.read import read_any
from tests.fuzz.common import FUZZ, JSONISH, NUMBERS, reads_or_refuses

IDS = st.one_of(st.sampled_from(["q1", "d1", "d2", "", " ", "q1\t", "1"]), st.text(max_size=6))
TEXT_RECORD = st.one_of(
    st.fixed_dictionaries(
        {"_id": st.one_of(IDS, JSONISH), "text": st.one_of(st.text(max_size=20), JSONISH)},
        optional={"title": st.one_of(st.text(max_size=8), JSONISH)},
    ),
    JSONISH,
)
SCORE = st.one_of(NUMBERS.map(str), st.sampled_from(["1", "0", "nan", "inf", "x", "", "1e999"]))
QREL_LINE = st.one_of(
    st.tuples(IDS, IDS, SCORE).map("\t".join),
    st.lists(st.text(max_size=5), max_size=5).map("\t".join),
    st.text(max_size=20),
)


def write_beir(folder: Path, corpus, queries, qrels: list[str], header: bool) -> None:
    (folder / "qrels").mkdir()
    lines = [json.dumps(r, allow_nan=True) for r in corpus]
    (folder / "corpus.jsonl").write_text("\n".join(lines))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries))
    text = "\n".join((["query-id\tcorpus-id\tscore"] if header else []) + qrels)
    (folder / "qrels" / "test.tsv").write_text(text)


@FUZZ
@given(
    corpus=st.lists(TEXT_RECORD, max_size=3),
    queries=st.lists(TEXT_RECORD, max_size=3),
    qrels=st.lists(QREL_LINE, max_size=4),
    header=st.booleans(),
)
def test_beir_folders(corpus, queries, qrels, header):
    corpus = [{"_id": "d1", "text": "a document"}, *corpus]
    queries = [{"_id": "q1", "text": "a query"}, *queries]
    with tempfile.TemporaryDirectory() as folder:
        write_beir(Path(folder), corpus, queries, ["q1\td1\t1", *qrels], header)
        splits = reads_or_refuses(lambda: read_any(folder), folder)
        if splits is not None:
            for data in splits.values():
                assert set(data.doc_ids) <= set(data.corpus)
                assert all(isinstance(text, str) for text in data.anchors + data.positives)


@FUZZ
@given(
    part=st.sampled_from(["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]),
    content=st.binary(max_size=300),
    cut=st.integers(0, 300),
)
def test_beir_files_of_random_truncated_and_non_utf8_bytes(part, content, cut):
    with tempfile.TemporaryDirectory() as folder:
        write_beir(Path(folder), [{"_id": "d1", "text": "doc"}], [{"_id": "q1", "text": "q"}],
                   ["q1\td1\t1"], True)  # fmt: skip
        file = Path(folder) / part
        file.write_bytes(file.read_bytes()[:cut] + content if cut % 2 else content)
        reads_or_refuses(lambda: read_any(folder), file)


CELL = st.one_of(
    st.text(max_size=20),
    NUMBERS.map(str),
    st.sampled_from(["", " ", "nan", "\x00", '"', "\n", "a\tb"]),
)
HEADERS = st.sampled_from([
    ["query", "positive"], ["anchor", "positive", "negative"], ["sentence1", "sentence2", "score"],
    ["query", "document", "label"], ["text", "label"], ["query"], ["Query ", " POS"],
])  # fmt: skip


@FUZZ
@given(
    header=HEADERS,
    rows=st.lists(st.lists(CELL, min_size=0, max_size=4), min_size=0, max_size=5),
    suffix=st.sampled_from([".csv", ".tsv"]),
)
def test_pair_tables(header, rows, suffix):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter="," if suffix == ".csv" else "\t").writerows([header, *rows])
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"pairs{suffix}"
        file.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        data = reads_or_refuses(lambda: read_any(file), file)
        if data is not None and data["train"].scores is not None:
            assert all(score == score and abs(score) != float("inf")
                       for score in data["train"].scores)  # fmt: skip


@FUZZ
@given(
    records=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"query": st.one_of(st.text(max_size=8), JSONISH),
                 "positive": st.one_of(st.text(max_size=8), JSONISH)},
                optional={"negative": JSONISH, "score": st.one_of(NUMBERS, JSONISH)},
            ),
            JSONISH,
        ),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_jsonl_tables(records):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "pairs.jsonl"
        file.write_text("\n".join(json.dumps(r, allow_nan=True) for r in records))
        reads_or_refuses(lambda: read_any(file), file)


@FUZZ
@given(
    content=st.binary(max_size=400),
    cut=st.integers(0, 400),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]),
)
def test_tables_of_random_truncated_and_non_utf8_bytes(content, cut, suffix):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"pairs{suffix}"
        file.write_bytes((b"query,positive\n" + content)[: cut + 15] if cut % 2 else content)
        reads_or_refuses(lambda: read_any(file), file)


def test_a_million_empty_lines_are_read_quickly(tmp_path):
    write_beir(tmp_path, [{"_id": "d1", "text": "doc"}], [{"_id": "q1", "text": "q"}],
               ["q1\td1\t1"], True)  # fmt: skip
    blank = "\n" * 1_000_000
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        file = tmp_path / name
        file.write_text(blank + file.read_text() + blank)
    (tmp_path / "pairs.csv").write_text("query,positive\n" + blank + "a,b\n" + blank)
    began = time.monotonic()
    assert len(read_any(tmp_path)["test"]) == 1
    assert len(read_any(tmp_path / "pairs.csv")["train"]) == 1
    assert time.monotonic() - began < 10.0


def test_non_utf8_files_are_refused_naming_the_file(tmp_path):
    """Regression (found by the fuzz run): a corpus.jsonl, qrels file or table that is not
    UTF-8 raised UnicodeDecodeError."""
    write_beir(tmp_path, [{"_id": "d1", "text": "doc"}], [{"_id": "q1", "text": "q"}],
               ["q1\td1\t1"], True)  # fmt: skip
    (tmp_path / "qrels" / "test.tsv").write_bytes(b"q1\td1\t1\n\xff\n")
    with pytest.raises(DataError, match="test.tsv: not UTF-8 text"):
        read_any(tmp_path)
    (tmp_path / "pairs.csv").write_bytes(b"query,positive\n\xff,b\n")
    with pytest.raises(DataError, match="pairs.csv: not UTF-8 text"):
        read_any(tmp_path / "pairs.csv")


def test_a_row_longer_than_the_header_is_refused_naming_the_line(tmp_path):
    """Regression (found by the fuzz run): a CSV whose first row had more cells than the
    header raised AttributeError (csv.DictReader keys the extra cells None)."""
    (tmp_path / "pairs.csv").write_text("query,positive\na,b,c\n")
    with pytest.raises(DataError, match="pairs.csv:2: 3 cells"):
        read_any(tmp_path / "pairs.csv")


def test_an_unreadable_parquet_file_is_refused_naming_the_file(tmp_path):
    """Regression (found by the fuzz run): random bytes named .parquet raised pyarrow's
    ArrowInvalid."""
    pytest.importorskip("pyarrow")
    (tmp_path / "pairs.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="pairs.parquet: not a Parquet file"):
        read_any(tmp_path / "pairs.parquet")


def test_an_infinite_or_nan_score_is_refused_naming_the_line(tmp_path):
    """Regression (found reading the reader): a qrels score of ``inf`` raised OverflowError;
    a table's ``nan`` score was read, and made the cosine loss NaN."""
    write_beir(tmp_path, [{"_id": "d1", "text": "doc"}], [{"_id": "q1", "text": "q"}],
               ["q1\td1\tinf"], True)  # fmt: skip
    with pytest.raises(DataError, match=r"test.tsv:2: score 'inf' is not"):
        read_any(tmp_path)
    (tmp_path / "pairs.csv").write_text("query,positive,score\na,b,nan\n")
    with pytest.raises(DataError, match=r"pairs.csv:2: score 'nan' is not a finite number"):
        read_any(tmp_path / "pairs.csv")


def test_deeply_nested_json_is_refused_naming_the_line(tmp_path):
    """Regression (found reading the reader): a corpus.jsonl line nested 100,000 deep raised
    RecursionError."""
    write_beir(tmp_path, [{"_id": "d1", "text": "doc"}], [{"_id": "q1", "text": "q"}],
               ["q1\td1\t1"], True)  # fmt: skip
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": ' + deep + "}")
    with pytest.raises(DataError, match="corpus.jsonl:1: not a JSON object"):
        read_any(tmp_path)
