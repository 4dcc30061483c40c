"""Where a question-answering model goes wrong: the kinds of question, passage lengths, the
breakdown of exact match and F1, and the worst answers with their spans highlighted."""

from __future__ import annotations

import pytest

from graft.tasks.question_answering.data import QuestionsData
from graft.tasks.question_answering.report import (
    breakdown,
    highlighted_passage,
    length_bucket,
    question_answering_sections,
    question_type,
    worst_record,
)


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many goals did he score?", "how many"),
        ("How much did it cost?", "how many"),
        ("In what year was it built?", "when"),
        ("When did the war end?", "when"),
        ("Who wrote Hamlet?", "who"),
        ("Whose idea was it?", "who"),
        ("How did it fall?", "how"),
        ("Which river is longest?", "which"),
        ("What is the capital?", "what"),
        ("Name the capital.", "other"),
    ],
)
def test_questions_are_grouped_by_their_kind(question, kind):
    assert question_type(question) == kind


def test_passages_are_grouped_by_length():
    assert [length_bucket("x" * n) for n in (10, 500, 1999, 6000)] == [
        "<500",
        "500-1000",
        "1000-2000",
        ">5000",
    ]


def test_breakdown_averages_each_group():
    parts = breakdown(["who", "what", "who"], [1.0, 0.0, 0.0], [1.0, 0.5, 0.25])
    assert list(parts) == ["who", "what"]  # the largest group first
    assert parts["who"] == {"exact_match": 0.5, "f1": 0.625, "questions": 2}


def test_the_worst_answer_shows_its_spans_in_the_passage_escaped():
    context = "x" * 600 + " The <b>Nile</b> flows north to the sea. " + "y" * 600
    start = context.index("north")
    data = QuestionsData(["q1"], ["Where does the Nile flow?"], [context], [[("north", start)]])
    found = {"answer": "the sea", "start": context.index("the sea"), "end": 0}
    found["end"] = found["start"] + len("the sea")
    record = worst_record(data, 0, found, 0.0)
    assert record["offset"] > 0 and len(record["context"]) < len(context)
    window = record["context"]
    assert window[slice(*record["reference_spans"][0])] == "north"
    assert window[slice(*record["span"])] == "the sea"
    html = highlighted_passage(window, tuple(record["span"]), record["reference_spans"])
    assert "&lt;b&gt;Nile&lt;/b&gt;" in html and "<b>" not in html
    assert "#f8d7da'>the sea</mark>" in html and "#dbe7fb'>north</mark>" in html
    sections = "".join(
        question_answering_sections(
            {
                "by_question_type": {"where": {"exact_match": 0.0, "f1": 0.0, "questions": 1}},
                "worst": [record],
            },
            "val",
        )
    )
    assert "By kind of question" in sections and "Worst answers (val)" in sections
