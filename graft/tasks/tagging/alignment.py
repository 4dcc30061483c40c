"""Words to sub-tokens and back: how a tagging model reads sentences of any length.

An encoder reads sub-tokens (WordPiece, BPE), while tags belong to words. Each word is scored
on its **first sub-token**; its other sub-tokens are read as context but never scored (the
convention of BERT's CoNLL-2003 experiments, Devlin et al. 2019, and of the Transformers
token-classification example). A word the tokenizer turns into nothing (a zero-width space)
has no sub-token: it is tagged ``O`` and never scored.

A sentence longer than the encoder's window (``max_length`` less its special tokens) is never
cut: it is split into **overlapping windows** of whole words (:func:`plan_windows`), each
encoded on its own, and every word is scored by the one window where it has the most context
on both sides (:func:`owners`), so the stitched sentence has exactly one score per word.

:func:`encode` does all of this for a batch of sentences with one tokenizer call: the
encoder's rows (one per window) and, for every word, the flat position ``row * length +
column`` of the sub-token that scores it (``-1`` for padding and words without sub-tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: Share of a window that the next window repeats, so that words near a cut are read with
#: context from both sides (a quarter of 254 sub-tokens: about 63).
WINDOW_OVERLAP = 0.25

Window = tuple[int, int]


def window_size(tokenizer: Any, max_length: int) -> int:
    """Sub-tokens of words that fit in one encoder row of ``max_length`` (its special tokens
    left out)."""
    return max(1, max_length - tokenizer.num_special_tokens_to_add())


def plan_windows(counts: Sequence[int], limit: int, overlap: int) -> list[Window]:
    """Word ranges ``[start, end)`` covering a sentence whose words have ``counts`` sub-tokens,
    each holding at most ``limit`` sub-tokens (a single longer word gets a window of its own),
    each repeating up to ``overlap`` sub-tokens of the one before."""
    n = len(counts)
    if sum(counts) <= limit:
        return [(0, n)]
    windows: list[Window] = []
    start = 0
    while True:
        end, size = start, 0
        while end < n and (end == start or size + counts[end] <= limit):
            size += counts[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        following, repeated = end, 0
        room = min(overlap, limit - counts[end])  # the next window must reach word `end`
        while following - 1 > start and repeated + counts[following - 1] <= room:
            following -= 1
            repeated += counts[following]
        start = following


def owners(windows: Sequence[Window], n_words: int) -> list[int]:
    """For each word, the window that scores it: the one where the word is furthest from a
    cut (a window edge inside the sentence; the sentence's own ends are no cut)."""
    owner = [0] * n_words
    best = [-1.0] * n_words
    for index, (start, end) in enumerate(windows):
        for word in range(start, end):
            left = word - start if start > 0 else math.inf
            right = end - 1 - word if end < n_words else math.inf
            context = min(left, right)
            if context > best[word]:
                owner[word], best[word] = index, context
    return owner


@dataclass
class Encoded:
    """A batch of sentences as encoder rows and the positions that score their words.

    Attributes:
        inputs: the tokenizer's tensors, one row per window (``input_ids``,
            ``attention_mask`` and, when the tokenizer makes them, ``token_type_ids``).
        word_position: ``long[sentences, max_words]``: the flat index ``row * length +
            column`` of each word's scoring sub-token, ``-1`` for padding and for words
            without sub-tokens.
        windows: each sentence's windows (more than one for a sentence over the limit).
    """

    inputs: dict[str, torch.Tensor]
    word_position: torch.Tensor
    windows: list[list[Window]]


def sub_token_counts(tokenizer: Any, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    """How many sub-tokens the tokenizer makes of each word of each sentence."""
    encoded = tokenizer(
        [list(words) for words in sentences], is_split_into_words=True, add_special_tokens=False
    )
    counts = []
    for index, words in enumerate(sentences):
        found = [0] * len(words)
        for word in encoded.word_ids(index):
            if word is not None:
                found[word] += 1
        counts.append(found)
    return counts


def encode(tokenizer: Any, sentences: Sequence[Sequence[str]], max_length: int) -> Encoded:
    """Encode ``sentences`` (lists of words) into windows of at most ``max_length`` sub-tokens
    (special tokens included), with the scoring position of every word (module docstring)."""
    limit = window_size(tokenizer, max_length)
    overlap = int(limit * WINDOW_OVERLAP)
    counts = sub_token_counts(tokenizer, sentences)
    windows = [plan_windows(found, limit, overlap) for found in counts]
    rows = [
        list(words[start:end])
        for words, spans in zip(sentences, windows, strict=True)
        for start, end in spans
    ]
    inputs = tokenizer(
        rows,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    length = inputs["input_ids"].shape[1]
    widest = max((len(words) for words in sentences), default=0)
    word_position = torch.full((len(sentences), max(1, widest)), -1, dtype=torch.long)
    row = 0
    for sentence, (words, spans) in enumerate(zip(sentences, windows, strict=True)):
        owner = owners(spans, len(words))
        for index, (start, _) in enumerate(spans):
            previous = None
            for column, word in enumerate(inputs.word_ids(row)):
                if word is not None and word != previous and owner[start + word] == index:
                    word_position[sentence, start + word] = row * length + column
                previous = word
            row += 1
    return Encoded(dict(inputs), word_position, windows)


def load_tokenizer(source: str) -> Any:
    """The fast tokenizer of ``source``, set up to read pre-split words (byte-level BPE
    tokenizers such as RoBERTa's need ``add_prefix_space`` for that)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    try:
        tokenizer([["a", "b"]], is_split_into_words=True)
    except (ValueError, AssertionError, TypeError):
        tokenizer = AutoTokenizer.from_pretrained(source, add_prefix_space=True)
    return tokenizer
