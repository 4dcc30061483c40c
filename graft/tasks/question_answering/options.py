"""The options of a question-answering fit.

Declared once with :func:`graft.options.option`: ``graft fit --help`` lists them in their own
panel and ``graft.fit(..., fix_offsets=True)`` takes them. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from graft.errors import ConfigError
from graft.options import KindOptions, option


@dataclass
class QuestionAnsweringOptions(KindOptions):
    """Options of ``task="question-answering"``.

    Attributes:
        fix_offsets: move an answer whose ``answer_start`` does not point at its text to the
            nearest place in the context where the text occurs (refused otherwise).
        doc_stride: sub-tokens shared by two consecutive windows of a context longer than
            the encoder's window.
        max_answer_length: the most sub-tokens an answer may span.
    """

    fix_offsets: bool = option(
        False,
        "Move an answer whose answer_start is wrong to the nearest place its text occurs "
        "in the context (without it, such an answer is refused, naming its id).",
        panel="Question answering",
    )
    doc_stride: int = option(
        128,
        "Sub-tokens shared by consecutive windows of a context longer than the window.",
        panel="Question answering",
    )
    max_answer_length: int = option(
        30, "The most sub-tokens an answer may span.", panel="Question answering"
    )

    def validate(self) -> QuestionAnsweringOptions:
        if self.doc_stride < 1:
            raise ConfigError(f"--doc-stride must be at least 1, got {self.doc_stride}")
        if self.max_answer_length < 1:
            raise ConfigError(
                f"--max-answer-length must be at least 1, got {self.max_answer_length}"
            )
        return self
