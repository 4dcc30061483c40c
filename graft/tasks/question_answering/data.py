"""Questions about passages, with the answers found in them: a question-answering fit's data.

:class:`QuestionsData` holds, for each question, its id, its text, its context (the passage)
and its reference answers, each the answer's text and the character where it starts in the
context (none for an unanswerable question of SQuAD v2.0). The readers
(:mod:`graft.tasks.question_answering.read`) check every answer against its context.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

#: An answer: its text and the character where it starts in the context.
Answer = tuple[str, int]


@dataclass
class QuestionsData:
    """Questions about contexts, with their reference answers.

    Attributes:
        ids: each question's id (SQuAD's, or the record's line for tables without one).
        questions: the questions' texts.
        contexts: the passage each question is asked about.
        answers: each question's reference answers ``(text, start)``; empty for a question the
            context does not answer (SQuAD v2.0).
        source: where the data were read from (for messages).
    """

    ids: list[str]
    questions: list[str]
    contexts: list[str]
    answers: list[list[Answer]]
    source: str = "questions"
    lines: list[str] = field(default_factory=list)

    modality: ClassVar[str] = "text"
    #: The kind of labels (what components made for class labels check before refusing).
    task: ClassVar[str] = "question-answering"
    skipped: ClassVar[tuple] = ()
    classes: ClassVar[list[str]] = ["start", "end"]

    def __len__(self) -> int:
        return len(self.questions)

    @property
    def items(self) -> list[tuple[str, str]]:
        """Each question with its context: what the model reads."""
        return list(zip(self.questions, self.contexts, strict=True))

    @property
    def labels(self) -> list[list[Answer]]:
        return self.answers

    @property
    def unanswerable(self) -> int:
        """How many questions have no answer in their context."""
        return sum(not found for found in self.answers)

    def content_hash(self) -> str:
        """SHA-256 over the ids, questions, contexts and answers (not where they were read)."""
        digest = hashlib.sha256()
        for row in zip(self.ids, self.questions, self.contexts, self.answers, strict=True):
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        return digest.hexdigest()

    def subset(self, indices) -> QuestionsData:
        chosen = [int(i) for i in indices]
        return QuestionsData(
            ids=[self.ids[i] for i in chosen],
            questions=[self.questions[i] for i in chosen],
            contexts=[self.contexts[i] for i in chosen],
            answers=[self.answers[i] for i in chosen],
            source=self.source,
            lines=[self.lines[i] for i in chosen] if self.lines else [],
        )
