"""Sentences of tokens with one entity tag per token: what the tagging readers return."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graft.tasks.tagging.schemes import Span, spans_from_tags

Offsets = list[tuple[int, int]]


@dataclass
class TaggedSentences:
    """Tokenised sentences and their IOB2 tags, with where each sentence came from.

    ``lines[i]`` names sentence ``i``'s origin for messages (``"train.txt, line 1203"``).
    ``texts`` and ``offsets`` give each sentence's text and each token's ``(start, end)``
    character span in it: the raw text for text-and-entities input, the tokens joined by
    single spaces otherwise. ``scheme`` is the scheme the input was written in (IOB1, IOB2
    or BIOES); ``tags`` are always IOB2.
    """

    tokens: list[list[str]]
    tags: list[list[str]]
    source: str
    lines: list[str]
    texts: list[str] | None = None
    offsets: list[Offsets] | None = None
    scheme: str = "IOB2"

    def __post_init__(self) -> None:
        n = len(self.tokens)
        if len(self.tags) != n or len(self.lines) != n:
            raise ValueError(
                f"{self.source}: {n} token lists, {len(self.tags)} tag lists, "
                f"{len(self.lines)} origins"
            )
        for i, (words, tags) in enumerate(zip(self.tokens, self.tags, strict=True)):
            if len(words) != len(tags):
                raise ValueError(f"{self.lines[i]}: {len(words)} tokens, {len(tags)} tags")
        for name in ("texts", "offsets"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{self.source}: {len(values)} {name} for {n} sentences")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def entity_types(self) -> list[str]:
        """The entity types the tags use, sorted."""
        return sorted({tag[2:] for tags in self.tags for tag in tags if tag != "O"})

    @property
    def tag_names(self) -> list[str]:
        """Every IOB2 tag of these types: ``O``, then ``B-`` and ``I-`` of each sorted type."""
        return ["O"] + [f"{prefix}-{kind}" for kind in self.entity_types for prefix in "BI"]

    def spans(self) -> list[list[Span]]:
        """Each sentence's entities as ``(start_token, end_token_exclusive, type)``."""
        return [spans_from_tags(tags) for tags in self.tags]

    def subset(self, indices: Sequence[int]) -> TaggedSentences:
        """The sentences at ``indices``, in that order, with their origins, texts and offsets."""

        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in indices]

        return TaggedSentences(
            tokens=pick(self.tokens),
            tags=pick(self.tags),
            source=self.source,
            lines=pick(self.lines),
            texts=pick(self.texts),
            offsets=pick(self.offsets),
            scheme=self.scheme,
        )

    def content_hash(self) -> str:
        """SHA-256 over the tokens and tags (not origins): equal for the same labelled data
        whichever format it was read from."""
        digest = hashlib.sha256()
        for words, tags in zip(self.tokens, self.tags, strict=True):
            digest.update(json.dumps([words, tags], ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()


@dataclass
class RawSentences:
    """Sentences as a reader found them, before scheme conversion: tags still in the file's
    scheme (``scheme`` set when the reader made the tags itself), and ``where(sentence,
    token)`` naming a token's place in the file (``"line 12"``) for error messages."""

    tokens: list[list[str]]
    tags: list[list[str]]
    lines: list[str]
    where: Callable[[int, int], str]
    texts: list[str] | None = None
    offsets: list[Offsets] | None = None
    scheme: str | None = None
