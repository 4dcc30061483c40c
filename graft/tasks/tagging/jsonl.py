"""JSON Lines tagging data: one sentence (or passage) per line, in one of two shapes.

- ``{"tokens": [...], "tags": [...]}``, ``ner_tags`` accepted for ``tags`` (tag names, not
  the class numbers of a Hugging Face dataset);
- ``{"text": "...", "entities": [...]}``: raw text with character-span entities (see
  :mod:`graft.tasks.tagging.entities`); ``label``, ``labels`` or ``spans`` may hold them, as
  Doccano and Label Studio exports name them. A record without the key has no entities.

The first record decides the shape; every record must have it. Records are named by their
line in the file. A record with no tokens (an empty list, or a text of only whitespace) is
skipped with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from graft.data.sources import json_lines
from graft.errors import DataError
from graft.tasks.tagging.entities import ENTITY_KEYS, entity_key, entity_spans, tag_text
from graft.tasks.tagging.sentences import RawSentences
from graft.tasks.tagging.words import join_tokens

log = logging.getLogger("graft")

#: Keys of a record that may hold its tags, in the order they are looked for.
TAG_KEYS = ("tags", "ner_tags")

Records = list[tuple[int, dict[str, Any]]]


def read_jsonl(path: Path, text: str) -> RawSentences:
    """The sentences of a JSON Lines file whose content is ``text``; tags as the file has them."""
    records = json_lines(path, text)
    number, first = records[0]
    if "tokens" in first and any(key in first for key in TAG_KEYS):
        return _token_records(path, records)
    if "text" in first:
        return _text_records(path, records)
    raise DataError(
        f"{path}, line {number}: expected 'tokens' with 'tags' (or 'ner_tags'), or 'text' with "
        f"'entities'; the record has {', '.join(map(repr, first)) or 'no keys'}"
    )


def _token_records(path: Path, records: Records) -> RawSentences:
    tokens, tags, numbers, skipped = [], [], [], []
    for number, record in records:
        key = next((key for key in TAG_KEYS if key in record), None)
        if "tokens" not in record or key is None:
            raise DataError(f"{path}, line {number}: no 'tokens' and 'tags' (or 'ner_tags')")
        words, labels = record["tokens"], record[key]
        _check_tokens(path, number, words)
        _check_tags(path, number, key, labels)
        if len(words) != len(labels):
            raise DataError(f"{path}, line {number}: {len(words)} tokens but {len(labels)} tags")
        if not words:
            skipped.append(number)
            continue
        tokens.append(words)
        tags.append(labels)
        numbers.append(number)
    _finish(path, numbers, skipped)
    joined = [join_tokens(words) for words in tokens]
    return RawSentences(
        tokens=tokens,
        tags=tags,
        lines=[f"{path.name}, line {number}" for number in numbers],
        where=lambda sentence, token: f"line {numbers[sentence]}, token {token + 1}",
        texts=[text for text, _ in joined],
        offsets=[offsets for _, offsets in joined],
    )


def _check_tokens(path: Path, number: int, words: Any) -> None:
    if not isinstance(words, list):
        raise DataError(f"{path}, line {number}: 'tokens' must be a list of strings")
    for index, word in enumerate(words, start=1):
        if not isinstance(word, str) or not word.strip():
            raise DataError(
                f"{path}, line {number}: token {index} ({word!r}) is not a non-empty string"
            )


def _check_tags(path: Path, number: int, key: str, labels: Any) -> None:
    if not isinstance(labels, list):
        raise DataError(f"{path}, line {number}: {key!r} must be a list of tag names")
    if any(isinstance(label, int | float) for label in labels):
        raise DataError(
            f"{path}, line {number}: {key!r} holds numbers (class ids); graft needs the tag "
            "names (O, B-PER, I-PER, ...)"
        )
    for index, label in enumerate(labels, start=1):
        if not isinstance(label, str):
            raise DataError(f"{path}, line {number}: tag {index} ({label!r}) is not a string")


def _text_records(path: Path, records: Records) -> RawSentences:
    key = entity_key([record for _, record in records])
    if key is None:
        raise DataError(f"{path}: no record holds entities (a key named {', '.join(ENTITY_KEYS)})")
    texts, offsets, tags, numbers, skipped = [], [], [], [], []
    for number, record in records:
        text = record.get("text")
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}: 'text' must be a string")
        try:
            found, labels = tag_text(text, entity_spans(record.get(key), text))
        except ValueError as error:
            raise DataError(f"{path}, line {number}: {error}") from None
        if not found:
            skipped.append(number)
            continue
        texts.append(text)
        offsets.append(found)
        tags.append(labels)
        numbers.append(number)
    _finish(path, numbers, skipped)
    return RawSentences(
        tokens=[[text[s:e] for s, e in found] for text, found in zip(texts, offsets, strict=True)],
        tags=tags,
        lines=[f"{path.name}, line {number}" for number in numbers],
        where=lambda sentence, token: f"line {numbers[sentence]}, token {token + 1}",
        texts=texts,
        offsets=offsets,
        scheme="IOB2",
    )


def _finish(path: Path, numbers: list[int], skipped: list[int]) -> None:
    if skipped:
        log.warning(
            "%s: skipped %d record(s) with no tokens (first: line %d)",
            path,
            len(skipped),
            skipped[0],
        )
    if not numbers:
        raise DataError(f"{path}: no record holds any token")
