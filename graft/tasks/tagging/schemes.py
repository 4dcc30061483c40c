"""Tagging schemes of entity labels on tokens, recognised from the tags and converted to IOB2.

- IOB2 (Tjong Kim Sang & Veenstra, EACL 1999): every entity starts with ``B-``, its other
  tokens are ``I-``. graft keeps tags in IOB2 internally.
- IOB1 (Ramshaw & Marcus 1995; the original CoNLL-2003 files): entities start with ``I-``;
  ``B-`` only marks an entity that directly follows another of the same type.
- BIOES, also called IOBES: ``B-`` first, ``I-`` inside, ``E-`` last token, ``S-`` an entity of
  one token.

In IOB2 and BIOES an ``I-`` (or ``E-``) must continue an entity of its own type; one that
follows ``O``, another type, an ``E-``/``S-`` or the sentence start is an error
(:class:`SchemeError`, which says which sentence and token). An entity that BIOES leaves
open (``B-`` or ``I-`` then ``O``) is read as ending there: its meaning is unambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from graft.errors import DataError

SCHEMES = ("IOB1", "IOB2", "BIOES")
#: Other names of the schemes that ``normalise_scheme`` accepts.
SCHEME_ALIASES = {"BIO": "IOB2", "IOBES": "BIOES"}

#: An entity: first token, token after its last (exclusive), type.
Span = tuple[int, int, str]


class SchemeError(DataError):
    """A tag that is malformed or cannot stand where it is.

    ``sentence`` and ``position`` (0-based, when known) locate the tag so that a reader can
    name the file and line; ``message`` is the description without a location.
    """

    def __init__(self, message: str, sentence: int | None = None, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.sentence = sentence
        self.position = position


def normalise_scheme(name: str) -> str:
    """The canonical name (IOB1, IOB2, BIOES) of a scheme name, case-insensitive."""
    upper = str(name).upper()
    upper = SCHEME_ALIASES.get(upper, upper)
    if upper not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {name!r}; graft reads {', '.join(SCHEMES)}")
    return upper


@lru_cache(maxsize=4096)
def split_tag(tag: str) -> tuple[str, str]:
    """``("O", "")`` for ``O``, else the prefix and the type: ``B-PER`` -> ``("B", "PER")``."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES" and tag[2:].strip() == tag[2:]:
        return tag[0], tag[2:]
    raise SchemeError(f"tag {tag!r} is neither O nor B-, I-, E- or S- followed by a type")


def _parsed(tags: Sequence[str], sentence: int | None) -> list[tuple[str, str]]:
    result = []
    for position, tag in enumerate(tags):
        try:
            result.append(split_tag(tag))
        except SchemeError as error:
            raise SchemeError(error.message, sentence, position) from None
    return result


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """The scheme of a file's tags: ``BIOES`` when any ``E-``/``S-`` occurs; otherwise ``IOB2``
    when some ``B-`` opens an entity that does not follow one of its own type (IOB1 never
    does that); otherwise ``IOB1`` when some ``I-`` opens an entity; ``IOB2`` when there are
    no entities at all. Malformed tags raise :class:`SchemeError`."""
    b_opens = i_opens = False
    for sentence, tags in enumerate(tag_sequences):
        previous = ""
        for prefix, kind in _parsed(tags, sentence):
            if prefix in "ES":
                return "BIOES"
            if prefix == "B" and kind != previous:
                b_opens = True
            elif prefix == "I" and kind != previous:
                i_opens = True
            previous = kind
    return "IOB1" if i_opens and not b_opens else "IOB2"


def to_iob2(tags: Sequence[str], scheme: str, *, sentence: int | None = None) -> list[str]:
    """One sentence's ``tags`` in ``scheme`` as IOB2 tags.

    Raises :class:`SchemeError` (with ``sentence`` and the token's position) for a tag that is
    malformed, not of the scheme, or an ``I-``/``E-`` that continues no entity.
    """
    scheme = normalise_scheme(scheme)
    result = []
    open_type = ""  # the type an I- (or E-) may continue here; "" when none
    for position, (prefix, kind) in enumerate(_parsed(tags, sentence)):
        if prefix == "O":
            result.append("O")
            open_type = ""
        elif prefix in "ES" and scheme != "BIOES":
            raise SchemeError(f"{tags[position]} is not an {scheme} tag", sentence, position)
        elif prefix == "S":
            result.append(f"B-{kind}")
            open_type = ""
        elif prefix == "B" or (kind != open_type and scheme == "IOB1"):
            result.append(f"B-{kind}")
            open_type = kind
        elif kind == open_type:
            result.append(f"I-{kind}")
            open_type = "" if prefix == "E" else kind
        else:
            raise _cannot_continue(tags, position, scheme, sentence)
    return result


def _cannot_continue(
    tags: Sequence[str], position: int, scheme: str, sentence: int | None
) -> SchemeError:
    follows = f"follows {tags[position - 1]}" if position else "starts the sentence"
    opener = "B- or S-" if scheme == "BIOES" else "B-"
    return SchemeError(
        f"{tags[position]} {follows} and so continues no entity; in {scheme} an entity "
        f"starts with {opener}",
        sentence,
        position,
    )


def spans_from_tags(iob2_tags: Sequence[str]) -> list[Span]:
    """The entities of one sentence's IOB2 tags as ``(start, end_exclusive, type)``, in order.

    An ``I-`` that continues no entity raises :class:`SchemeError`.
    """
    spans: list[Span] = []
    start, open_type = -1, ""
    for position, (prefix, kind) in enumerate(_parsed(iob2_tags, None)):
        if prefix == "I" and kind == open_type:
            continue
        if open_type:
            spans.append((start, position, open_type))
            open_type = ""
        if prefix == "B":
            start, open_type = position, kind
        elif prefix != "O":
            if prefix in "ES":
                raise SchemeError(f"{iob2_tags[position]} is not an IOB2 tag", None, position)
            raise _cannot_continue(iob2_tags, position, "IOB2", None)
    if open_type:
        spans.append((start, len(iob2_tags), open_type))
    return spans


def tags_from_spans(n_tokens: int, spans: Iterable[Span]) -> list[str]:
    """IOB2 tags of a sentence of ``n_tokens`` tokens holding the entities ``spans``
    (``(start, end_exclusive, type)``, which must lie in the sentence and not overlap)."""
    tags = ["O"] * n_tokens
    end_of_previous = 0
    for start, end, kind in sorted(spans):
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"entity {(start, end, kind)} lies outside tokens 0..{n_tokens}")
        if start < end_of_previous:
            raise ValueError(f"entity {(start, end, kind)} overlaps the entity before it")
        tags[start] = f"B-{kind}"
        tags[start + 1 : end] = [f"I-{kind}"] * (end - start - 1)
        end_of_previous = end
    return tags


def to_bioes(iob2_tags: Sequence[str]) -> list[str]:
    """One sentence's IOB2 tags in BIOES: ``S-`` for one-token entities, ``E-`` for last tokens."""
    tags = ["O"] * len(iob2_tags)
    for start, end, kind in spans_from_tags(iob2_tags):
        if end - start == 1:
            tags[start] = f"S-{kind}"
        else:
            tags[start : end - 1] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 2)
            tags[end - 1] = f"E-{kind}"
    return tags
