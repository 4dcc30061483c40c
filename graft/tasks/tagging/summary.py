"""The tagging part of a fit's ``summary.json``: sentences, words and entities of each split,
and the sentences longer than the encoder's window."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("graft")


def entity_summary(splits: Any) -> dict:
    """Each split's entity counts and tagging scheme."""
    parts = splits.parts()
    return {
        "entities": {name: part.entity_counts() for name, part in parts.items()},
        "schemes": {name: part.scheme for name, part in parts.items()},
    }


def data_summary(splits: Any, backbone: Any, kind: str) -> dict:
    """Sentences, words and entities of each split, and how many sentences are longer than
    the encoder's window (read in overlapping windows, never cut)."""
    parts = splits.parts()
    return {
        "modality": "text",
        "task": kind,
        "examples": {name: len(part) for name, part in parts.items()},
        "words": {name: sum(map(len, part.tokens)) for name, part in parts.items()},
        "class_counts": {name: part.entity_counts() for name, part in parts.items()},
        "skipped": {},
        "skipped_count": 0,
        "windowed_sentences": windowed(parts, backbone.preprocessing),
    }


def windowed(parts: dict[str, Any], preprocessing: Any) -> dict:
    """How many sentences of each split are over the encoder's window (logged when any are)."""
    from graft.tasks.tagging.alignment import load_tokenizer, sub_token_counts, window_size

    tokenizer = load_tokenizer(preprocessing.tokenizer)
    limit = window_size(tokenizer, preprocessing.max_length)
    counts = {}
    for name, part in parts.items():
        over = 0
        for start in range(0, len(part), 1000):
            batch = part.tokens[start : start + 1000]
            over += sum(sum(found) > limit for found in sub_token_counts(tokenizer, batch))
        counts[name] = over
    if any(counts.values()):
        log.info(
            "sentences over the %d sub-tokens the encoder reads at once are read in "
            "overlapping windows: %s",
            limit,
            ", ".join(f"{n} {c} of {len(parts[n])}" for n, c in counts.items()),
        )
    return {"window": limit, **counts}
