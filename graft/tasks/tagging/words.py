"""graft's word tokenizer for raw text: words and punctuation marks, with character offsets.

A word is a run of word characters (letters, digits, ``_``) and the combining marks that
belong to them (so Devanagari or decomposed accents stay whole); every other character that
is not whitespace is a token of its own. Offsets are Python string indices (code points).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

#: One word-character run, or one other non-space character.
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")

Offsets = list[tuple[int, int]]


def word_offsets(text: str) -> Offsets:
    """The ``(start, end)`` character span of each word and punctuation mark of ``text``."""
    spans: Offsets = []
    for match in WORD_PATTERN.finditer(text):
        start, end = match.span()
        if spans and spans[-1][1] == start and _wordish(text, start) and _wordish(text, start - 1):
            spans[-1] = (spans[-1][0], end)  # a word continued across a combining mark
        else:
            spans.append((start, end))
    return spans


def _wordish(text: str, index: int) -> bool:
    char = text[index]
    return char.isalnum() or char == "_" or unicodedata.category(char).startswith("M")


def cut_at(offsets: Sequence[tuple[int, int]], cuts: Iterable[int]) -> Offsets:
    """``offsets`` with every span that strictly contains a position of ``cuts`` split there.

    Used so that an entity boundary inside a word (``Obama|care``) becomes a token boundary.
    """
    inside = sorted(set(cuts))
    if not inside:
        return list(offsets)
    result: Offsets = []
    for start, end in offsets:
        for cut in inside[bisect_right(inside, start) : bisect_left(inside, end)]:
            result.append((start, cut))
            start = cut
        result.append((start, end))
    return result


def join_tokens(tokens: Sequence[str]) -> tuple[str, Offsets]:
    """The text of ``tokens`` joined by single spaces, and each token's span in it."""
    offsets: Offsets = []
    position = 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), offsets
