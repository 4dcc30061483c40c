"""Whether a path holds sequence-labelling data, told by its content (``--task auto``).

Cheap and conservative: only the first :data:`PEEK_BYTES` of one file are read, and a
classification table must never be taken for tagging data. A file holds tagging data when
it is JSON Lines whose first records have ``tokens`` with ``tags`` (or ``ner_tags``), or
``text`` with a list of character-span entities (not a class name or a list of labels); or a
column file whose first token lines all have the same number (two or more) of
whitespace-separated fields, the last one a tag (``O`` or ``B-``, ``I-``, ``E-``, ``S-``
followed by a type), with at least one entity tag among them. A folder holds tagging data
when its training file (``train.txt``, ``train.conll``, ``train.jsonl``, ...) does.

Data that is *nearly* tagging data (:func:`near_miss`): a column file whose first token lines
are mostly tagged, with an entity tag among them, but one of which breaks the format (no tag,
another number of columns, a last column that is no tag); or JSON Lines whose records hold
``tokens`` or ``tags``, or text with span entities, one of which breaks the format. Its reason
names the file and the line, and says what a line or record should be.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from graft.errors import DataError
from graft.tasks.tagging.columns import CONLL_LINE, DOCSTART
from graft.tasks.tagging.entities import ENTITY_KEYS
from graft.tasks.tagging.jsonl import TAG_KEYS
from graft.tasks.tagging.read import SPLIT_NAMES, SUFFIXES, read_tagged

#: How much of a file the check reads.
PEEK_BYTES = 65536
#: Token lines (or JSON records) looked at.
PEEK_LINES = 200
TAG = re.compile(r"^(O|[BIES]-\S+)$")


def holds_tagged_data(data: Any) -> bool:
    """Whether ``data`` (a path to a file or folder) holds tagging data (module docstring)."""
    try:
        return any(_file_holds(file) for file in _files(data))
    except OSError:
        return False


def near_miss(data: Any) -> str | None:
    """Why ``data`` (a path to a file or folder) is nearly, but not, tagging data: one line
    naming the file and the line that breaks the format and what was expected (module
    docstring); None when it is not nearly tagging data."""
    try:
        for file in _files(data):
            reason = _file_near_miss(file)
            if reason:
                return reason
    except OSError:
        return None
    return None


def _files(data: Any) -> list[Path]:
    """The file ``data`` names, or the training files of the folder it names."""
    if not isinstance(data, str | Path):
        return []
    path = Path(data).expanduser()
    if path.is_dir():
        return [
            file
            for file in sorted(path.iterdir())
            if file.is_file()
            and file.suffix.lower() in SUFFIXES
            and file.stem.lower() in SPLIT_NAMES["train"]
        ]
    return [path] if path.is_file() else []


def _head(path: Path) -> list[tuple[int, str]]:
    """The first :data:`PEEK_LINES` non-blank lines of ``path`` with their line numbers."""
    with path.open("rb") as handle:
        head = handle.read(PEEK_BYTES).decode("utf-8-sig", errors="replace")
    lines = head.split("\n")
    if len(head) == PEEK_BYTES:
        lines = lines[:-1]  # the last line may be cut
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    return numbered[:PEEK_LINES]


def _file_holds(path: Path) -> bool:
    lines = [line for _, line in _head(path)]
    if not lines:
        return False
    if lines[0].lstrip().startswith("{"):
        return _jsonl_holds(lines)
    return _columns_hold(lines)


def _jsonl_holds(lines: list[str]) -> bool:
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return False
        if not isinstance(record, dict):
            return False
        if "tokens" in record and any(key in record for key in TAG_KEYS):
            return True
        if "text" not in record:
            return False
        found = next((record[key] for key in ENTITY_KEYS if key in record), None)
        if found is None or found == []:
            continue  # a record without entities: look at the next one
        return isinstance(found, list) and all(_is_span(item) for item in found)
    return False


def _is_span(item: Any) -> bool:
    if isinstance(item, dict) and isinstance(item.get("value"), dict):
        item = item["value"]
    if isinstance(item, list | tuple):
        return len(item) == 3 and all(isinstance(x, int) for x in item[:2])
    return isinstance(item, dict) and "start" in item and "end" in item


def _columns_hold(lines: list[str]) -> bool:
    widths, entity = set(), False
    for line in lines:
        fields = line.split()
        if fields[0] == DOCSTART:
            continue
        widths.add(len(fields))
        if len(widths) > 1 or len(fields) < 2 or not TAG.match(fields[-1]):
            return False
        entity = entity or fields[-1] != "O"
    return entity


def _file_near_miss(path: Path) -> str | None:
    numbered = _head(path)
    if not numbered:
        return None
    if numbered[0][1].lstrip().startswith("{"):
        return _jsonl_near_miss(path, numbered)
    return _columns_near_miss(path, numbered)


def _columns_near_miss(path: Path, numbered: list[tuple[int, str]]) -> str | None:
    """The first line of a column file that breaks the format, when most lines are tagged."""
    lines = [(n, line.split()) for n, line in numbered if line.split()[0] != DOCSTART]
    tagged = [fields for _, fields in lines if len(fields) >= 2 and TAG.match(fields[-1])]
    if len(tagged) < 2 or 2 * len(tagged) < len(lines) or all(f[-1] == "O" for f in tagged):
        return None
    width = Counter(len(fields) for fields in tagged).most_common(1)[0][0]
    for number, fields in lines:
        shown = " ".join(fields)
        if len(fields) == 1:
            problem = f"{shown!r} has no tag"
        elif len(fields) != width:
            problem = f"{shown!r} has {len(fields)} columns where the other lines have {width}"
        elif not TAG.match(fields[-1]):
            problem = (
                f"{shown!r} ends in {fields[-1]!r}, not a tag (O, or B-, I-, E- or S- and a type)"
            )
        else:
            continue
        return f"{path}, line {number}: {problem}; {CONLL_LINE}"
    return _reader_error(path)


def _jsonl_near_miss(path: Path, numbered: list[tuple[int, str]]) -> str | None:
    """The reader's reason for JSON Lines whose records show tagging data's keys."""
    for _, line in numbered:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and _tagging_keys(record):
            return _reader_error(path)
    return None


def _tagging_keys(record: dict[str, Any]) -> bool:
    if "tokens" in record or any(key in record for key in TAG_KEYS):
        return True
    found = next((record[key] for key in ENTITY_KEYS if key in record), None)
    return "text" in record and isinstance(found, list) and any(_spanlike(x) for x in found)


def _spanlike(item: Any) -> bool:
    if isinstance(item, dict):
        inner = item["value"] if isinstance(item.get("value"), dict) else {}
        return any(key in item or key in inner for key in ("start", "end"))
    return isinstance(item, list | tuple) and len(item) >= 2 and isinstance(item[0], int)


def _reader_error(path: Path) -> str | None:
    """What the tagging reader says of ``path``, or None when it reads it."""
    try:
        read_tagged(path)
    except DataError as error:
        return str(error)
    return None
