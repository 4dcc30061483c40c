"""CoNLL column files: one token a line, whitespace-separated columns, blank lines between
sentences.

The token is the first column and its tag the last, unless ``label_column`` gives the tag's
column as an integer index (negative counts from the end: ``-1`` is the last). Every token
line must have as many columns as the file's first one. ``-DOCSTART-`` lines (document
boundaries, as in CoNLL-2003) end a sentence and are skipped.
"""

from __future__ import annotations

from pathlib import Path

from graft.errors import ConfigError, DataError
from graft.tasks.tagging.sentences import RawSentences

DOCSTART = "-DOCSTART-"
#: What a line of a column file is, as messages say it.
CONLL_LINE = "a CoNLL line is 'WORD ... TAG' (or blank between sentences)"


def read_columns(path: Path, text: str, label_column: int | None = None) -> RawSentences:
    """The sentences of a column file whose content is ``text``; tags as the file has them."""
    sentences: list[tuple[list[str], list[str], list[int]]] = []  # tokens, tags, their lines
    current: tuple[list[str], list[str], list[int]] = ([], [], [])
    width = label = first = 0
    for number, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if current[0]:
                sentences.append(current)
                current = ([], [], [])
            continue
        if not width:
            width, label = len(fields), _label_index(path, number, len(fields), label_column)
            first = number
        elif len(fields) == 1 and label_column is None:
            raise DataError(f"{path}, line {number}: {fields[0]!r} has no tag; {CONLL_LINE}")
        elif len(fields) != width:
            raise DataError(
                f"{path}, line {number}: {_columns(len(fields))} where the file's first token "
                f"line (line {first}) has {width}"
            )
        current[0].append(fields[0])
        current[1].append(fields[label])
        current[2].append(number)
    if current[0]:
        sentences.append(current)
    if not sentences:
        raise DataError(f"{path}: the file holds no sentences (only blank or -DOCSTART- lines)")
    numbers = [found for _, _, found in sentences]
    return RawSentences(
        tokens=[words for words, _, _ in sentences],
        tags=[labels for _, labels, _ in sentences],
        lines=[f"{path.name}, line {found[0]}" for found in numbers],
        where=lambda sentence, token: f"line {numbers[sentence][token]}",
    )


def _label_index(path: Path, number: int, width: int, label_column: int | None) -> int:
    if width < 2:
        raise DataError(
            f"{path}, line {number}: {_columns(width)}; a column file needs the token first "
            "and its tag (the last column unless label_column says which)"
        )
    if label_column is None:
        return width - 1
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise ConfigError(f"label_column must be a column index (an integer), got {label_column!r}")
    if not -width <= label_column < width:
        raise ConfigError(
            f"label_column {label_column} is outside the {width} columns of {path} (line {number})"
        )
    index = label_column % width
    if index == 0:
        raise ConfigError(f"label_column {label_column} is the token column of {path}")
    return index


def _columns(count: int) -> str:
    return f"{count} column{'' if count == 1 else 's'}"
