"""Character-span entities on raw text, as labelling tools export them, turned into tokens and
IOB2 tags.

An entity is ``[start, end, label]`` (Doccano), ``{"start", "end", "label"}`` (or ``"labels"``
holding one label), or a Label Studio result item ``{"value": {"start", "end", "labels"}}``;
``end`` is exclusive and offsets count characters (code points) of the text. An item that also
carries the entity's ``text`` must match the text at its span (tools that count UTF-16 units
disagree with Python on emoji; this catches it). Exact duplicates count once; overlapping or
nested entities are refused.

The text is split into words by :func:`~graft.tasks.tagging.words.word_offsets`, and every
entity boundary that falls inside a word splits that word there (``Obama|care``), so no
entity is ever widened or narrowed: its tokens cover exactly its characters, less any
whitespace at its ends.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from graft.tasks.tagging.schemes import tags_from_spans
from graft.tasks.tagging.words import Offsets, cut_at, word_offsets

#: Keys of a record that may hold its entities, in the order they are looked for.
ENTITY_KEYS = ("entities", "label", "labels", "spans")

CharSpan = tuple[int, int, str]


def entity_key(records: list[Mapping[str, Any]]) -> str | None:
    """The first of :data:`ENTITY_KEYS` that any record uses, or None."""
    return next((key for key in ENTITY_KEYS if any(key in record for record in records)), None)


def entity_spans(items: Any, text: str) -> list[CharSpan]:
    """A record's entity items as sorted ``(start, end, label)`` character spans of ``text``.

    Raises ValueError, in the user's terms, for an item of unknown shape, a span outside the
    text or empty, a label that is not a non-empty string, or two entities that overlap.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"the entities must be a list, got {type(items).__name__}")
    spans = sorted({_entity(item, text) for item in items})
    for before, after in pairwise(spans):
        if after[0] < before[1]:
            raise ValueError(
                f"entities {list(before)} and {list(after)} overlap; overlapping or nested "
                "entities cannot be tagged one tag per token"
            )
    return spans


def _entity(item: Any, text: str) -> CharSpan:
    if isinstance(item, Mapping) and isinstance(item.get("value"), Mapping):
        item = item["value"]  # a Label Studio result
    if isinstance(item, list | tuple) and len(item) == 3:
        start, end, label = item
    elif isinstance(item, Mapping) and "start" in item and "end" in item:
        start, end = item["start"], item["end"]
        label = item.get("label", item.get("labels"))
        if isinstance(label, list):
            if len(label) != 1:
                raise ValueError(f"entity {_show(item)} has {len(label)} labels; one is needed")
            label = label[0]
    else:
        raise ValueError(
            f"entity {_show(item)} is neither [start, end, label] nor an object with start, "
            "end and label"
        )
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        raise ValueError(f"entity {_show(item)}: start and end must be integers")
    if not 0 <= start < end <= len(text):
        raise ValueError(
            f"entity {_show(item)}: span [{start}, {end}) is empty or outside the text "
            f"of {len(text)} characters"
        )
    if not isinstance(label, str) or not label.strip() or label.strip() != label:
        raise ValueError(f"entity {_show(item)}: the label must be a non-empty type name")
    if isinstance(item, Mapping) and isinstance(item.get("text"), str):
        if item["text"] != text[start:end]:
            raise ValueError(
                f"entity {_show(item)}: its text {item['text']!r} differs from the text at "
                f"[{start}, {end}), {text[start:end]!r}"
            )
    return start, end, label


def _show(item: Any, limit: int = 80) -> str:
    shown = repr(item)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def tag_text(text: str, spans: list[CharSpan]) -> tuple[Offsets, list[str]]:
    """The words of ``text`` (split at entity boundaries) and their IOB2 tags for ``spans``
    (sorted, non-overlapping, as :func:`entity_spans` returns them).

    Raises ValueError for an entity that covers no word (only whitespace).
    """
    offsets = cut_at(word_offsets(text), (b for start, end, _ in spans for b in (start, end)))
    starts = [start for start, _ in offsets]
    ends = [end for _, end in offsets]
    token_spans = []
    for start, end, label in spans:
        first, stop = bisect_right(ends, start), bisect_left(starts, end)
        if first >= stop:
            raise ValueError(
                f"entity [{start}, {end}, {label!r}] ({text[start:end]!r}) covers no word"
            )
        token_spans.append((first, stop, label))
    return offsets, tags_from_spans(len(offsets), token_spans)
