"""Where a question-answering model goes wrong: exact match and F1 by the kind of question
(who, when, how many, ...) and by the length of the passage, and the worst answers with their
passage, the predicted span and the reference spans highlighted (every piece of text escaped:
a passage is data, never markup). Read by the report and the command line's tables."""

from __future__ import annotations

import re
from typing import Any

from graft.report.html import escape as _e
from graft.report.html import table_section
from graft.tasks.base import MetricsTable

#: The kinds of question, tried in this order on the question's first words (``how many``
#: before ``how``); anything else is ``other``.
QUESTION_TYPES = (
    ("how many", r"\bhow (many|much)\b"),
    ("when", r"\b(when|what year|what time|which year)\b"),
    ("who", r"\b(who|whom|whose)\b"),
    ("where", r"\bwhere\b"),
    ("why", r"\bwhy\b"),
    ("which", r"\bwhich\b"),
    ("how", r"\bhow\b"),
    ("what", r"\bwhat\b"),
)
#: The passage lengths the breakdown groups by, in characters (upper bounds).
LENGTH_BUCKETS = (500, 1000, 2000, 5000)
#: Characters of the passage shown on each side of the spans of a worst answer.
CONTEXT_SHOWN = 250
#: Highlight colours of the predicted span (right or wrong) and the references.
COLOURS = {"correct": "#d4edda", "wrong": "#f8d7da", "true": "#dbe7fb"}


def question_type(question: str) -> str:
    """The kind of ``question``: the first of :data:`QUESTION_TYPES` its text matches."""
    text = question.lower()
    for name, pattern in QUESTION_TYPES:
        if re.search(pattern, text):
            return name
    return "other"


def length_bucket(context: str) -> str:
    """The passage-length group of ``context`` (``"<500"``, ``"500-1000"``, ..., ``">5000"``
    characters)."""
    size, lower = len(context), 0
    for upper in LENGTH_BUCKETS:
        if size < upper:
            return f"<{upper}" if lower == 0 else f"{lower}-{upper}"
        lower = upper
    return f">{LENGTH_BUCKETS[-1]}"


def breakdown(groups: list[str], exact: list[float], f1: list[float]) -> dict[str, dict]:
    """Exact match, F1 and count of each group (in the order groups first appear sorted by
    count, largest first)."""
    rows: dict[str, list[tuple[float, float]]] = {}
    for group, e, f in zip(groups, exact, f1, strict=True):
        rows.setdefault(group, []).append((e, f))
    ordered = sorted(rows.items(), key=lambda item: -len(item[1]))
    return {
        group: {
            "exact_match": sum(e for e, _ in pairs) / len(pairs),
            "f1": sum(f for _, f in pairs) / len(pairs),
            "questions": len(pairs),
        }
        for group, pairs in ordered
    }


def breakdown_table(parts: dict[str, dict], title: str, heading: str) -> MetricsTable:
    """A table of :func:`breakdown`'s groups."""
    table = MetricsTable(title, [heading, "exact match", "F1", "questions"], left=(heading,))
    for group, row in parts.items():
        table.rows.append(
            [group, f"{row['exact_match']:.4f}", f"{row['f1']:.4f}", str(row["questions"])]
        )
    return table


def question_answering_sections(values: dict, split: str) -> list[str]:
    """The report's sections of one split's question-answering metrics."""
    sections = []
    for key, heading, column in (
        ("by_question_type", "By kind of question", "question"),
        ("by_context_length", "By passage length (characters)", "passage"),
    ):
        if values.get(key):
            sections.append(table_section(breakdown_table(values[key], split, column), heading))
    if values.get("worst"):
        sections.append(_worst(values["worst"], split))
    return sections


def highlighted_passage(context: str, predicted: tuple[int, int] | None, references: list) -> str:
    """``context`` escaped, with the predicted span and the reference spans (``(start, end)``
    characters) each in a ``<mark>`` (of overlapping spans, the first is shown)."""
    spans = [(s, e, "true") for s, e in references if 0 <= s < e <= len(context)]
    correct = predicted is not None and any(predicted == (s, e) for s, e, _ in spans)
    if predicted is not None and 0 <= predicted[0] < predicted[1] <= len(context):
        spans = [s for s in spans if (s[0], s[1]) != predicted]
        spans.append((*predicted, "correct" if correct else "wrong"))
    pieces, at = [], 0
    for start, end, kind in sorted(spans):
        if start < at:
            continue
        pieces.append(_e(context[at:start]))
        pieces.append(f"<mark style='background:{COLOURS[kind]}'>{_e(context[start:end])}</mark>")
        at = end
    pieces.append(_e(context[at:]))
    return "".join(pieces)


def _worst(examples: list[dict], split: str) -> str:
    items = []
    for example in examples:
        context = example.get("context")
        answer = example["answer"] or "(no answer)"
        passage = ""
        if context:
            predicted = example.get("span")
            references = [tuple(r) for r in example.get("reference_spans", [])]
            marked = highlighted_passage(
                context, tuple(predicted) if predicted else None, references
            )
            before = "…" if example.get("offset") else ""
            passage = f"<p>{before}{marked}…</p>"
        items.append(
            f"<li><p><b>{_e(example['question'])}</b> (F1 {example['f1']:.2f})</p>"
            f"<p>answer: {_e(answer)}; references: {_e(' | '.join(example['references']))}</p>"
            f"{passage}</li>"
        )
    legend = (
        f"<mark style='background:{COLOURS['wrong']}'>predicted</mark>, "
        f"<mark style='background:{COLOURS['true']}'>reference</mark>"
    )
    return f"<h2>Worst answers ({_e(split)})</h2><p>{legend}</p><ol>{''.join(items)}</ol>"


def worst_record(data: Any, index: int, found: dict, f1: float) -> dict:
    """The record of one of the worst answers: the question, the answer and the references,
    and the part of the passage around their spans (:data:`CONTEXT_SHOWN` characters each
    side; ``offset``: where it starts in the passage) with the spans within it."""
    references = data.answers[index]
    context = data.contexts[index]
    span = (found["start"], found["end"]) if found["answer"] else None
    spans = [(start, start + len(text)) for text, start in references] + ([span] if span else [])
    begin = max(0, min((s for s, _ in spans), default=0) - CONTEXT_SHOWN)
    finish = min(len(context), max((e for _, e in spans), default=0) + CONTEXT_SHOWN)
    return {
        "id": data.ids[index],
        "question": data.questions[index],
        "answer": found["answer"],
        "span": [span[0] - begin, span[1] - begin] if span else None,
        "references": [text for text, _ in references],
        "reference_spans": [
            [start - begin, start - begin + len(text)] for text, start in references
        ],
        "context": context[begin:finish],
        "offset": begin,
        "f1": f1,
    }
