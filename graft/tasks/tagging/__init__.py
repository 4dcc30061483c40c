"""Sequence-labelling (named-entity recognition) data: reading, checking, tagging schemes
and entity spans.

- :mod:`.read`: :func:`read_tagged` (one file) and :func:`read_tagged_splits` (a folder of
  train/validation/test files), the format decided by content;
- :mod:`.columns`: CoNLL column files; :mod:`.jsonl`: JSON Lines (tokens and tags, or text
  and character-span entities); :mod:`.entities`: character spans to tokens and tags;
- :mod:`.schemes`: IOB1, IOB2 and BIOES, detection, conversion, spans from tags and back;
- :mod:`.words`: graft's word tokenizer for raw text;
- :mod:`.sentences`: :class:`TaggedSentences`, what the readers return (tags in IOB2).
"""

from graft.tasks.tagging.read import read_tagged, read_tagged_splits
from graft.tasks.tagging.schemes import (
    SCHEMES,
    SchemeError,
    Span,
    detect_scheme,
    spans_from_tags,
    tags_from_spans,
    to_bioes,
    to_iob2,
)
from graft.tasks.tagging.sentences import TaggedSentences
from graft.tasks.tagging.words import word_offsets

__all__ = [
    "SCHEMES",
    "SchemeError",
    "Span",
    "TaggedSentences",
    "detect_scheme",
    "read_tagged",
    "read_tagged_splits",
    "spans_from_tags",
    "tags_from_spans",
    "to_bioes",
    "to_iob2",
    "word_offsets",
]
