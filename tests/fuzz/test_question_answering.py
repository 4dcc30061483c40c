"""The question-answering readers fuzzed: SQuAD v1.1/v2.0 JSON, JSON Lines and tables of
question, context and answers with wrong JSON types, huge, negative or NaN answer_start,
answers outside the context, empty contexts, deep nesting, random, truncated and non-UTF-8
bytes. Each reads (every answer then at its place in its context), or raises graft's error in
one line naming the file; the regression tests below are named for what the fuzzing found."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graft.errors import DataError
from graft.tasks.question_answering.read import holds_questions, read_questions
from tests.fuzz.common import FUZZ, JSONISH, NUMBERS, reads_or_refuses

CONTEXT = st.one_of(
    st.sampled_from(["Paris is the capital of France.", "", " ", "a\nb", "\x00"]),
    st.text(max_size=40),
)
ANSWER_TEXT = st.one_of(st.sampled_from(["Paris", "France", "capital", "", "x"]), JSONISH)
START = st.one_of(NUMBERS, st.sampled_from([0, 24, -1, "0", "1e3", "nan", None]), JSONISH)
ANSWER = st.one_of(
    st.fixed_dictionaries({"text": ANSWER_TEXT, "answer_start": START}),
    JSONISH,
)
ANSWERS = st.one_of(
    st.lists(ANSWER, max_size=3),
    st.fixed_dictionaries(
        {"text": st.one_of(st.lists(ANSWER_TEXT, max_size=2), JSONISH),
         "answer_start": st.one_of(st.lists(START, max_size=2), JSONISH)}
    ),
    JSONISH,
)  # fmt: skip
QUESTION = st.fixed_dictionaries(
    {"question": st.one_of(st.just("Where?"), st.text(max_size=10), JSONISH)},
    optional={"id": st.one_of(st.text(max_size=6), JSONISH), "answers": ANSWERS,
              "is_impossible": st.one_of(st.booleans(), JSONISH)},
)  # fmt: skip
PARAGRAPH = st.one_of(
    st.fixed_dictionaries(
        {"context": st.one_of(CONTEXT, JSONISH), "qas": st.one_of(st.lists(QUESTION, max_size=3),
                                                                  JSONISH)}
    ),
    JSONISH,
)  # fmt: skip
SQUAD = st.one_of(
    st.fixed_dictionaries(
        {"data": st.one_of(
            st.lists(st.one_of(st.fixed_dictionaries(
                {"paragraphs": st.one_of(st.lists(PARAGRAPH, max_size=3), JSONISH)}), JSONISH),
                max_size=3),
            JSONISH)},
        optional={"version": st.sampled_from(["v1.1", "v2.0"])},
    ),
    JSONISH,
)  # fmt: skip
RECORD = st.one_of(
    st.fixed_dictionaries(
        {"question": st.one_of(st.just("Where?"), JSONISH), "context": st.one_of(CONTEXT, JSONISH)},
        optional={"answers": ANSWERS, "answer_text": ANSWER_TEXT, "answer_start": START,
                  "id": JSONISH},
    ),
    JSONISH,
)  # fmt: skip


def check_answers(data) -> None:
    """Every answer read lies at its start in its context."""
    for context, answers in zip(data.contexts, data.answers, strict=True):
        for text, start in answers:
            assert isinstance(start, int) and context[start : start + len(text)] == text


def read_checked(file: Path, fix_offsets: bool) -> None:
    data = reads_or_refuses(lambda: read_questions(file, fix_offsets), file)
    if data is not None:
        check_answers(data)
    reads_or_refuses(lambda: holds_questions(file), file)


@FUZZ
@given(document=SQUAD, fix_offsets=st.booleans())
def test_squad_json(document, fix_offsets):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "train.json"
        file.write_text(json.dumps(document, allow_nan=True))
        read_checked(file, fix_offsets)


@FUZZ
@given(records=st.lists(RECORD, min_size=1, max_size=4), fix_offsets=st.booleans())
def test_jsonl_records(records, fix_offsets):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "train.jsonl"
        file.write_text("\n".join(json.dumps(r, allow_nan=True) for r in records))
        read_checked(file, fix_offsets)


CELL = st.one_of(st.text(max_size=20), NUMBERS.map(str), JSONISH.map(json.dumps))


@FUZZ
@given(
    rows=st.lists(st.lists(CELL, min_size=4, max_size=4), min_size=1, max_size=5),
    answers_column=st.booleans(),
    delimiter=st.sampled_from([",", "\t"]),
)
def test_tables(rows, answers_column, delimiter):
    header = ["question", "context", *(["answers", "id"] if answers_column else
                                       ["answer_text", "answer_start"])]  # fmt: skip
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter).writerows([header, *rows])
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / ("train.csv" if delimiter == "," else "train.tsv")
        file.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        read_checked(file, True)


@FUZZ
@given(
    content=st.binary(max_size=400),
    cut=st.integers(0, 400),
    suffix=st.sampled_from([".json", ".jsonl", ".csv", ".tsv", ".parquet"]),
)
def test_random_truncated_and_non_utf8_bytes(content, cut, suffix):
    squad = json.dumps({"data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}
    ]}]}]}).encode()  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"train{suffix}"
        file.write_bytes(squad[:cut] + content if cut % 2 else content)
        read_checked(file, True)


@FUZZ
@given(depth=st.sampled_from([10, 10**4, 10**5]), where=st.sampled_from(["answers", "data"]))
def test_deep_nesting(depth, where):
    with tempfile.TemporaryDirectory() as folder:
        nested = "[" * depth + "]" * depth
        if where == "data":
            file = Path(folder) / "train.json"
            file.write_text('{"data": ' + nested + ', "paragraphs": 1}')
        else:
            file = Path(folder) / "train.jsonl"
            file.write_text('{"question": "q", "context": "c", "answers": ' + nested + "}")
        read_checked(file, False)


def test_an_infinite_answer_start_is_refused_naming_the_question(tmp_path):
    """Regression (found reading the reader): ``"answer_start": Infinity`` (JSON as Python
    writes it) raised OverflowError from int()."""
    file = tmp_path / "train.jsonl"
    record = {"id": "q7", "question": "Where?", "context": "in Paris",
              "answers": [{"text": "Paris", "answer_start": float("inf")}]}  # fmt: skip
    file.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"train.jsonl, question q7: answer_start inf is not"):
        read_questions(file)


def test_non_utf8_json_lines_are_refused_naming_the_file(tmp_path):
    """Regression (found by the fuzz run): a JSONL file that is not UTF-8 raised
    UnicodeDecodeError."""
    file = tmp_path / "train.jsonl"
    file.write_bytes(b'{"question": "\xff", "context": "c"}\n')
    with pytest.raises(DataError, match="train.jsonl: not UTF-8 text"):
        read_questions(file)


def test_deeply_nested_json_is_refused_naming_the_file(tmp_path):
    """Regression (found by the fuzz run): a SQuAD or JSONL file nested 100,000 deep raised
    RecursionError."""
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "train.json").write_text('{"data": ' + deep + "}")
    with pytest.raises(DataError, match="train.json: not valid JSON"):
        read_questions(tmp_path / "train.json")
    (tmp_path / "train.jsonl").write_text('{"question": "q", "context": "c", "x": ' + deep + "}")
    with pytest.raises(DataError, match="train.jsonl, line 1: not JSON"):
        read_questions(tmp_path / "train.jsonl")


def test_answers_of_the_wrong_type_are_refused_naming_the_question(tmp_path):
    """Regression (found reading the reader): datasets' layout with ``text`` or ``answer_start``
    not a list (``{"text": 3}``) raised TypeError."""
    file = tmp_path / "train.jsonl"
    record = {"id": "q1", "question": "Where?", "context": "in Paris",
              "answers": {"text": 3, "answer_start": [3]}}  # fmt: skip
    file.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"train.jsonl, question q1: answers"):
        read_questions(file)


def test_an_id_across_lines_stays_one_line(tmp_path):
    """Regression (found reading the reader): a question id holding a newline broke the
    message over two lines."""
    file = tmp_path / "train.jsonl"
    file.write_text(json.dumps({"id": "a\nb", "question": "Where?", "context": " "}))
    with pytest.raises(DataError) as raised:
        read_questions(file)
    assert "\n" not in str(raised.value) and "'a\\nb'" in str(raised.value)
