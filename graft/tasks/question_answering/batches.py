"""Questions and their contexts as a question-answering model's batches.

An item is a question with its context (and, for training and validation, its reference
answers). A batch is the windows of its questions (:mod:`graft.tasks.question_answering.windows`:
one or more per question) with what turns window scores back into answers: each context
sub-token's characters, the question each window reads (its place in the data), the contexts
as code points (one row per question, so that they travel with the tensors) and the reference
answers' character spans (for the validation score). Targets are each window's answer start
and end sub-tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from graft.errors import ConfigError
from graft.tasks.question_answering.windows import encode_windows, span_targets

Item = tuple[str, str]


@functools.cache
def load_tokenizer(source: str) -> Any:
    """The fast tokenizer of ``source`` (its offset mapping places answers in the context)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{source}: question answering needs a fast tokenizer (offsets)")
    return tokenizer


def as_item(item: Any) -> Item:
    """An input as ``(question, context)``: a pair, or a dict with both."""
    if isinstance(item, dict):
        item = (item.get("question"), item.get("context"))
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise ConfigError(
            f"a question-answering model reads a question with its context, got {item!r:.80}"
        )
    question, context = item
    if not isinstance(question, str) or not isinstance(context, str) or not context:
        raise ConfigError("a question-answering input needs a question and a context (texts)")
    return question.strip(), context


class QuestionsDataset(Dataset):
    """Questions with their contexts, and their answers when labelled; each item is ``(item,
    answers or None, index)``. ``by_length`` serves them shortest context first (less padding
    per batch; the index restores the order), for evaluation and prediction."""

    def __init__(
        self, items: Sequence[Any], answers: Sequence | None = None, by_length: bool = False
    ):
        self.items = [as_item(item) for item in items]
        self.answers = answers
        order = range(len(self.items))
        self.order = sorted(order, key=lambda i: len(self.items[i][1])) if by_length else order

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        index = self.order[position]
        answers = None if self.answers is None else self.answers[index]
        return self.items[index], answers, index


class QuestionsCollate:
    """Encodes a list of :class:`QuestionsDataset` items as ``(inputs, targets)`` (picklable:
    the tokenizer is loaded in each process that uses it).

    ``inputs`` holds the tokenizer's tensors (one row per window), ``offsets`` ``[W, L, 2]``,
    ``example`` ``[W]`` (the question's index in the data), ``row`` ``[W]`` (its row of
    ``characters``), ``characters`` ``[Q, C]`` (contexts as code points, ``-1`` padding) and
    ``gold`` ``[W, A, 2]`` (reference answers' characters, ``-1`` padding); ``targets`` is
    ``long[W, 2]``.
    """

    def __init__(self, preprocessing: Any, stride: int):
        self.preprocessing, self.stride = preprocessing, stride

    def __call__(self, batch: list) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        items, answers, indices = zip(*batch, strict=True)
        questions, contexts = [q for q, _ in items], [c for _, c in items]
        tokenizer = load_tokenizer(self.preprocessing.tokenizer)
        windows = encode_windows(
            tokenizer, questions, contexts, self.preprocessing.max_length, self.stride
        )
        answers = [found or [] for found in answers]
        inputs = dict(windows.inputs)
        inputs["offsets"] = windows.offsets
        inputs["row"] = windows.example
        inputs["example"] = torch.tensor(indices, dtype=torch.long)[windows.example]
        inputs["characters"] = characters(contexts)
        inputs["gold"] = _gold(answers, windows.example)
        return inputs, span_targets(windows, answers)


def _gold(answers: list[list[tuple[str, int]]], rows: torch.Tensor) -> torch.Tensor:
    width = max(1, max(map(len, answers)))
    table = torch.full((len(answers), width, 2), -1, dtype=torch.long)
    for row, found in enumerate(answers):
        for place, (text, start) in enumerate(found):
            table[row, place] = torch.tensor([start, start + len(text)])
    return table[rows]


def characters(texts: list[str]) -> torch.Tensor:
    """Texts as a table of code points (``-1`` padding)."""
    table = torch.full((len(texts), max(1, max(map(len, texts)))), -1, dtype=torch.int32)
    for row, text in enumerate(texts):
        if text:
            table[row, : len(text)] = torch.tensor([ord(c) for c in text], dtype=torch.int32)
    return table


def text_of(codes: torch.Tensor, start: int = 0, end: int | None = None) -> str:
    """The characters ``start:end`` of a text stored by :func:`characters`."""
    part = codes[start:end]
    return "".join(map(chr, part[part >= 0].tolist()))
