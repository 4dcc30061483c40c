"""Question-answering readers: SQuAD JSON, JSON Lines and tables, offset checks, one-line
errors, and recognition by content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graft.errors import DataError
from graft.tasks import claiming_kind
from graft.tasks.question_answering.read import (
    read_question_splits,
    read_questions,
    split_by_context,
)

SQUAD = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "squad_v1_subset"
needs_squad = pytest.mark.skipif(not SQUAD.is_dir(), reason="squad_v1_subset not available")

CONTEXT = "The Eiffel Tower is in Paris. It was finished in 1889 by Gustave Eiffel."


def squad(questions: list[dict], context: str = CONTEXT) -> dict:
    return {
        "version": "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": context, "qas": questions}]}],
    }


def write(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


@needs_squad
def test_the_squad_subset_reads_with_every_answer_in_place():
    train = read_questions(SQUAD / "train.json")
    dev = read_questions(SQUAD / "dev.json")
    assert (len(train), len(dev)) == (3000, 1000)
    assert sum(map(len, dev.answers)) == 3325
    for context, answers in zip(dev.contexts, dev.answers, strict=True):
        for text, start in answers:
            assert context[start : start + len(text)] == text
    assert not set(train.contexts) & set(dev.contexts)


@needs_squad
def test_squad_data_and_a_folder_of_it_are_recognised():
    kind = claiming_kind(SQUAD / "train.json")
    assert kind is not None and kind.kind == "question-answering"
    assert claiming_kind(SQUAD).kind == "question-answering"
    train, dev, test = read_question_splits(SQUAD)
    assert (len(train), len(dev), test) == (3000, 1000, None)


def test_a_wrong_offset_is_refused_in_one_line_naming_the_question(tmp_path):
    path = write(
        tmp_path / "d.json",
        squad(
            [
                {
                    "id": "q1",
                    "question": "Where?",
                    "answers": [{"text": "Paris", "answer_start": 23}],
                },
                {"id": "q2", "question": "When?", "answers": [{"text": "1889", "answer_start": 3}]},
            ]
        ),
    )
    with pytest.raises(DataError) as caught:
        read_questions(path)
    message = str(caught.value)
    assert "\n" not in message and "question q2" in message and str(path) in message
    assert "--fix-offsets" in message


def test_fix_offsets_moves_an_answer_to_the_nearest_place_it_occurs(tmp_path):
    context = "Eiffel built it. Later, Eiffel retired."
    path = write(
        tmp_path / "d.json",
        squad(
            [{"id": "q", "question": "Who?", "answers": [{"text": "Eiffel", "answer_start": 20}]}],
            context,
        ),
    )
    data = read_questions(path, fix_offsets=True)
    assert data.answers == [[("Eiffel", 24)]]


def test_an_answer_not_in_its_context_is_refused_even_with_fix_offsets(tmp_path):
    path = write(
        tmp_path / "d.json",
        squad(
            [{"id": "q9", "question": "Who?", "answers": [{"text": "Napoleon", "answer_start": 0}]}]
        ),
    )
    with pytest.raises(DataError, match="q9.*does not occur"):
        read_questions(path, fix_offsets=True)


def test_squad_v2_unanswerable_questions_have_no_answers(tmp_path):
    path = write(
        tmp_path / "v2.json",
        squad(
            [
                {
                    "id": "a",
                    "question": "Where?",
                    "answers": [{"text": "Paris", "answer_start": 23}],
                },
                {"id": "b", "question": "Why?", "answers": [], "is_impossible": True},
            ]
        ),
    )
    data = read_questions(path)
    assert data.answers == [[("Paris", 23)], []] and data.unanswerable == 1


def test_jsonl_and_csv_layouts_read_alike(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    rows = [
        {
            "id": "1",
            "question": "Where?",
            "context": CONTEXT,
            "answer_text": "Paris",
            "answer_start": 23,
        },
        {
            "id": "2",
            "question": "When?",
            "context": CONTEXT,
            "answers": {"text": ["1889"], "answer_start": [49]},
        },
        {
            "id": "3",
            "question": "Who?",
            "context": CONTEXT,
            "answers": [{"text": "Gustave Eiffel", "answer_start": 57}],
        },
    ]
    jsonl.write_text("\n".join(json.dumps(row) for row in rows))
    data = read_questions(jsonl)
    assert data.answers == [[("Paris", 23)], [("1889", 49)], [("Gustave Eiffel", 57)]]
    csv = tmp_path / "d.csv"
    csv.write_text(f'id,question,context,answer_text,answer_start\n1,Where?,"{CONTEXT}",Paris,23\n')
    assert read_questions(csv).answers == [[("Paris", 23)]]
    assert claiming_kind(jsonl).kind == claiming_kind(csv).kind == "question-answering"


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"data": [{"paragraphs": [{"context": "x", "qas": [', "not valid JSON"),
        ('{"data": [{"paragraphs": [{"context": "x"}]}]}', "paragraph 0: no 'qas'"),
        (
            '{"data": [{"paragraphs": [{"context": "", "qas": [{"id": "z", "question": "q"}]}]}]}',
            "question z: no context",
        ),
    ],
)
def test_bad_files_get_one_line_errors_naming_file_and_record(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        read_questions(path)
    assert expected in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q", "context": CONTEXT}) + "\n{oops\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not JSON"):
        read_questions(path)


def test_the_validation_split_keeps_each_context_on_one_side(tmp_path):
    rows = [
        {
            "id": str(i),
            "question": f"q{i}",
            "context": f"context number {i % 7}",
            "answer_text": "context",
            "answer_start": 0,
        }
        for i in range(40)
    ]
    data = read_questions(rows)
    train, val = split_by_context(data, 0.3, seed=1)
    assert len(train) + len(val) == 40 and len(val)
    assert not {data.contexts[i] for i in train} & {data.contexts[i] for i in val}
