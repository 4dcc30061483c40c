"""Sentences as a tagging model's batches: a torch Dataset and its collate function.

An item is a sentence as its text and the character span of each word in it (what
:class:`~graft.tasks.tagging.TaggedSentences` keeps, for any input format), or a raw text,
split into words by :func:`~graft.tasks.tagging.word_offsets`. A batch is the encoder's rows
with the scoring position of each word (:mod:`~graft.tasks.tagging.alignment`), plus what
turns word scores back into answers: each sentence's word offsets, its text (as code points,
so that it travels with the tensors) and its place in the data. Targets are word-level tag
indices, ``-100`` (ignored by the loss) for padding and for words without a sub-token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from graft.tasks.tagging.alignment import encode, load_tokenizer
from graft.tasks.tagging.words import word_offsets

#: The target of a word that the loss and the score ignore.
IGNORED = -100

Offsets = list[tuple[int, int]]
Sentence = tuple[str, Offsets]


def as_sentence(item: Any) -> Sentence:
    """An item as ``(text, word offsets)``: a raw text is split into words."""
    if isinstance(item, str):
        return item, word_offsets(item)
    text, offsets = item
    return str(text), [(int(start), int(end)) for start, end in offsets]


class TaggingDataset(Dataset):
    """Sentences, with their tag indices when labelled; each item is ``(sentence, tags or
    None, index)``. ``by_length`` serves them shortest first (less padding per batch; the
    index restores the order), for evaluation and prediction."""

    def __init__(
        self,
        items: Sequence[Any],
        tag_ids: Sequence[Sequence[int]] | None = None,
        by_length: bool = False,
    ):
        self.items = [as_sentence(item) for item in items]
        self.tag_ids = tag_ids
        order = range(len(self.items))
        self.order = sorted(order, key=lambda i: len(self.items[i][0])) if by_length else order

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        index = self.order[position]
        tags = None if self.tag_ids is None else self.tag_ids[index]
        return self.items[index], tags, index


class TaggingCollate:
    """Encodes a list of :class:`TaggingDataset` items as ``(inputs, targets)`` (picklable:
    the tokenizer is loaded in each process that uses it).

    ``inputs`` holds the tokenizer's tensors (one row per window), ``word_position`` ``[B,
    W]``, ``offsets`` ``[B, W, 2]`` (``-1`` padding), ``characters`` ``[B, C]`` (code points,
    ``-1`` padding) and ``index`` ``[B]``; ``targets`` is ``long[B, W]``.
    """

    def __init__(self, preprocessing: Any):
        self.preprocessing = preprocessing
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.preprocessing.tokenizer)
        return self._tokenizer

    def __call__(self, batch: list) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        sentences, tags, indices = zip(*batch, strict=True)
        words = [[text[start:end] for start, end in offsets] for text, offsets in sentences]
        encoded = encode(self.tokenizer, words, self.preprocessing.max_length)
        positions = encoded.word_position
        inputs = dict(encoded.inputs)
        inputs["word_position"] = positions
        inputs["offsets"] = _padded([offsets for _, offsets in sentences], positions.shape[1])
        inputs["characters"] = _characters([text for text, _ in sentences])
        inputs["index"] = torch.tensor(indices, dtype=torch.long)
        targets = torch.full(positions.shape, IGNORED, dtype=torch.long)
        for row, labels in enumerate(tags):
            if labels is not None:
                targets[row, : len(labels)] = torch.as_tensor(labels, dtype=torch.long)
        targets[positions < 0] = IGNORED
        return inputs, targets

    def __getstate__(self):
        return {"preprocessing": self.preprocessing, "_tokenizer": None}


def _padded(offsets: list[Offsets], width: int) -> torch.Tensor:
    table = torch.full((len(offsets), width, 2), -1, dtype=torch.long)
    for row, spans in enumerate(offsets):
        if spans:
            table[row, : len(spans)] = torch.as_tensor(spans, dtype=torch.long)
    return table


def _characters(texts: list[str]) -> torch.Tensor:
    table = torch.full((len(texts), max(1, max(map(len, texts)))), -1, dtype=torch.int32)
    for row, text in enumerate(texts):
        if text:
            table[row, : len(text)] = torch.tensor([ord(c) for c in text], dtype=torch.int32)
    return table


def text_of(characters: torch.Tensor) -> str:
    """The text that :class:`TaggingCollate` stored as code points (padding dropped)."""
    return "".join(map(chr, characters[characters >= 0].tolist()))


def at_words(values: torch.Tensor, word_position: torch.Tensor) -> torch.Tensor:
    """Each word's row of per-sub-token ``values`` ``[rows, length, ...]``: ``[sentences,
    words, ...]`` gathered at ``word_position`` (:class:`TaggingCollate`), zero where there is
    no word."""
    flat = values.reshape(-1, *values.shape[2:])
    gathered = flat[word_position.clamp_min(0)]
    present = (word_position >= 0).reshape(*word_position.shape, *[1] * (values.dim() - 2))
    return gathered * present.to(gathered.dtype)
