"""Whether a path holds sequence-labelling data, told by its content (``--task auto``).

Cheap and conservative: only the first :data:`PEEK_BYTES` of one file are read, and a
classification table must never be taken for tagging data. A file holds tagging data when
it is JSON Lines whose first records have ``tokens`` with ``tags`` (or ``ner_tags``), or
``text`` with a list of character-span entities (not a class name or a list of labels); or a
column file whose first token lines all have the same number (two or more) of
whitespace-separated fields, the last one a tag (``O`` or ``B-``, ``I-``, ``E-``, ``S-``
followed by a type), with at least one entity tag among them. A folder holds tagging data
when its training file (``train.txt``, ``train.conll``, ``train.jsonl``, ...) does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from graft.tasks.tagging.columns import DOCSTART
from graft.tasks.tagging.entities import ENTITY_KEYS
from graft.tasks.tagging.jsonl import TAG_KEYS
from graft.tasks.tagging.read import SPLIT_NAMES, SUFFIXES

#: How much of a file the check reads.
PEEK_BYTES = 65536
#: Token lines (or JSON records) looked at.
PEEK_LINES = 200
TAG = re.compile(r"^(O|[BIES]-\S+)$")


def holds_tagged_data(data: Any) -> bool:
    """Whether ``data`` (a path to a file or folder) holds tagging data (module docstring)."""
    if not isinstance(data, str | Path):
        return False
    path = Path(data).expanduser()
    try:
        if path.is_dir():
            return any(
                _file_holds(file)
                for file in sorted(path.iterdir())
                if file.is_file()
                and file.suffix.lower() in SUFFIXES
                and file.stem.lower() in SPLIT_NAMES["train"]
            )
        return path.is_file() and _file_holds(path)
    except OSError:
        return False


def _file_holds(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(PEEK_BYTES).decode("utf-8-sig", errors="replace")
    lines = head.split("\n")
    if len(head) == PEEK_BYTES:
        lines = lines[:-1]  # the last line may be cut
    lines = [line for line in lines if line.strip()][:PEEK_LINES]
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
