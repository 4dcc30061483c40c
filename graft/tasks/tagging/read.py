"""Reading sequence-labelling (NER) data: one file, or a folder of train/validation/test files.

The format is decided by content, not by the file's suffix alone: a ``.jsonl``/``.ndjson``
file, or any file whose first non-blank line is a JSON object, is JSON Lines
(:mod:`~graft.tasks.tagging.jsonl`); anything else is a CoNLL column file
(:mod:`~graft.tasks.tagging.columns`). The tagging scheme (IOB1, IOB2, BIOES) is detected from
a file's tags (:func:`~graft.tasks.tagging.schemes.detect_scheme`), each file on its own,
unless ``scheme`` names it; tags are converted to IOB2.
"""

from __future__ import annotations

import json
from pathlib import Path

from graft.errors import ConfigError, DataError
from graft.tasks.tagging.columns import read_columns
from graft.tasks.tagging.jsonl import read_jsonl
from graft.tasks.tagging.schemes import SchemeError, detect_scheme, normalise_scheme, to_iob2
from graft.tasks.tagging.sentences import RawSentences, TaggedSentences
from graft.tasks.tagging.words import join_tokens

#: File suffixes a folder's split files may have.
SUFFIXES = (".txt", ".conll", ".iob", ".tsv", ".jsonl", ".ndjson")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: File names (without suffix, case-insensitive) of each split in a folder.
SPLIT_NAMES = {
    "train": ("train",),
    "val": ("valid", "dev", "validation", "val"),
    "test": ("test",),
}


def read_tagged(
    source: str | Path, *, label_column: int | None = None, scheme: str | None = None
) -> TaggedSentences:
    """Read one file of tagged sentences: a CoNLL column file or JSON Lines.

    ``label_column`` is the tag's column index in a column file (default: the last; negative
    counts from the end). ``scheme`` (IOB1, IOB2, BIOES; default: detected) says how a file's
    tags are written; text-and-entities files are always read as IOB2.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: a folder; read_tagged_splits reads a folder of split files")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if _is_jsonl(path, text):
        if label_column is not None:
            raise ConfigError(f"label_column applies to column files; {path} is JSON Lines")
        raw = read_jsonl(path, text)
    else:
        raw = read_columns(path, text, label_column)
    return _converted(path, raw, scheme)


def read_tagged_splits(
    source: str | Path, *, label_column: int | None = None, scheme: str | None = None
) -> tuple[TaggedSentences, TaggedSentences | None, TaggedSentences | None]:
    """``(train, val, test)`` from a folder holding ``train``, ``valid``/``dev``/``validation``/
    ``val`` and ``test`` files (any of :data:`SUFFIXES`), or ``(data, None, None)`` from one
    file. Options are those of :func:`read_tagged`, applied to every file."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return read_tagged(path, label_column=label_column, scheme=scheme), None, None
    found = {split: _split_file(path, names) for split, names in SPLIT_NAMES.items()}
    if found["train"] is None:
        raise DataError(
            f"{path}: no training file; expected a file named train ({', '.join(SUFFIXES)}), "
            "and optionally valid, dev, validation or val, and test"
        )
    train, val, test = (
        read_tagged(file, label_column=label_column, scheme=scheme) if file else None
        for file in found.values()
    )
    return train, val, test


def _split_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    matches = sorted(
        file
        for file in folder.iterdir()
        if file.is_file()
        and not file.name.startswith(".")
        and file.suffix.lower() in SUFFIXES
        and file.stem.lower() in names
    )
    if len(matches) > 1:
        raise DataError(
            f"{folder}: {', '.join(file.name for file in matches)} could each be the same "
            "split; keep one"
        )
    return matches[0] if matches else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 ({error.reason})") from None


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    first = next(line for line in text.split("\n") if line.strip()).strip()
    if first == "[" or first.startswith("[{"):
        raise DataError(f"{path}: a JSON array; graft reads JSON Lines (one object per line)")
    if not first.startswith("{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _converted(path: Path, raw: RawSentences, scheme: str | None) -> TaggedSentences:
    try:
        found = raw.scheme or (normalise_scheme(scheme) if scheme else None)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    try:
        found = found or detect_scheme(raw.tags)
        tags = [to_iob2(labels, found, sentence=i) for i, labels in enumerate(raw.tags)]
    except SchemeError as error:
        where = raw.where(error.sentence, error.position)
        suffix = f" (the file's tags read as {found})" if found else ""
        raise DataError(f"{path}, {where}: {error.message}{suffix}") from None
    if raw.texts is None:
        joined = [join_tokens(words) for words in raw.tokens]
        raw.texts, raw.offsets = [t for t, _ in joined], [o for _, o in joined]
    return TaggedSentences(
        tokens=raw.tokens,
        tags=tags,
        source=str(path),
        lines=raw.lines,
        texts=raw.texts,
        offsets=raw.offsets,
        scheme=found,
    )
