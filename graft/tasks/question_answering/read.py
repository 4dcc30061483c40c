"""Reading question-answering data: SQuAD JSON (v1.1, and v2.0's unanswerable questions), JSON
Lines, CSV/TSV/Parquet tables and DataFrames or ``datasets.Dataset`` of questions and contexts.

A record (a JSONL line, a table row) holds ``question`` and ``context`` and its answers as
``answer_text`` and ``answer_start``, or ``answers``: a list of ``{"text", "answer_start"}``, or
the ``datasets`` layout ``{"text": [...], "answer_start": [...]}`` (an empty list: no answer).
Every answer is checked against its context: an ``answer_start`` that does not point at the
answer's text is refused naming the question's id, or with ``fix_offsets`` moved to the
nearest place the text occurs. A bad file or record is one line (DataError) naming the file
and the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graft.errors import DataError
from graft.tasks.question_answering.data import Answer, QuestionsData

#: Extensions of the tables read (besides SQuAD's .json and JSON Lines).
TABLES = (".csv", ".tsv", ".parquet")
#: The files of a folder of splits: training, validation, test (first found of each).
SPLIT_FILES = (("train",), ("dev", "val", "valid", "validation"), ("test",))
_SUFFIXES = (".json", ".jsonl", *TABLES)
#: Characters read to tell a file's format (a SQuAD file's first context may be long).
_PEEK = 1 << 16


def peek(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return handle.read(_PEEK)


def is_squad_json(path: Path) -> bool:
    """Whether ``path`` is SQuAD's JSON (``{"data": [{"paragraphs": [...]}]}``), by its start."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    head = peek(path)
    return head.lstrip().startswith("{") and '"data"' in head and '"paragraphs"' in head


def _record_columns(path: Path) -> set[str]:
    """The keys of the first record of a JSON Lines file or the columns of a table."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        first = peek(path).lstrip().split("\n", 1)[0]
        try:
            record = json.loads(first)
        except (json.JSONDecodeError, RecursionError):
            return set()
        return set(record) if isinstance(record, dict) else set()
    if suffix in (".csv", ".tsv"):
        header = peek(path).split("\n", 1)[0]
        return {name.strip().strip('"') for name in header.split("\t" if suffix == ".tsv" else ",")}
    return set()


def holds_questions(data: Any) -> bool:
    """Whether ``data`` holds question-answering data: a SQuAD JSON file, a JSONL file or
    table with ``question`` and ``context`` columns, a folder of such training data, or such
    data in memory."""
    if isinstance(data, QuestionsData):
        return True
    columns = getattr(data, "column_names", None) or getattr(data, "columns", None)
    if columns is not None and not isinstance(data, str | Path):
        return {"question", "context"} <= {str(c) for c in columns}
    if not isinstance(data, str | Path):
        return False
    path = Path(data).expanduser()
    if path.is_dir():
        found = _split_file(path, SPLIT_FILES[0])
        return found is not None and holds_questions(found)
    if not path.is_file():
        return False
    return is_squad_json(path) or {"question", "context"} <= _record_columns(path)


def near_miss(data: Any) -> str | None:
    """Why a JSON file with SQuAD's ``data`` is not quite SQuAD: its first article without
    ``paragraphs``, or a paragraph without ``context`` or ``qas``."""
    if not isinstance(data, str | Path):
        return None
    path = Path(data).expanduser()
    if path.suffix.lower() != ".json" or not path.is_file() or '"data"' not in peek(path):
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list) or not articles or not isinstance(articles[0], dict):
        return None
    if "paragraphs" not in articles[0]:
        return f"{path}: article 0 has no 'paragraphs' (SQuAD JSON: data[].paragraphs[].qas[])"
    return None


def _split_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for suffix in _SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def read_question_splits(data: Any, fix_offsets: bool = False) -> list[QuestionsData | None]:
    """Training, validation and test questions: one file or in-memory data (training only), or
    a folder of ``train`` and ``dev``/``val`` and ``test`` files."""
    if isinstance(data, str | Path) and Path(data).expanduser().is_dir():
        folder = Path(data).expanduser()
        files = [_split_file(folder, names) for names in SPLIT_FILES]
        if files[0] is None:
            raise DataError(f"{folder}: no train.json, train.jsonl or train table in the folder")
        return [None if f is None else read_questions(f, fix_offsets) for f in files]
    return [read_questions(data, fix_offsets), None, None]


def read_questions(data: Any, fix_offsets: bool = False) -> QuestionsData:
    """Questions with their contexts and answers from a file or from data in memory (a
    DataFrame, a ``datasets.Dataset``, a list of records), every answer checked."""
    if isinstance(data, QuestionsData):
        return data
    if not isinstance(data, str | Path):
        rows = data.to_dict("records") if hasattr(data, "to_dict") else list(data)
        return _from_records(rows, type(data).__name__, fix_offsets)
    path = Path(data).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_squad(path, fix_offsets)
    if suffix == ".jsonl":
        return _from_records(_jsonl_records(path), str(path), fix_offsets)
    if suffix in TABLES:
        from graft.data.sources import read_table

        return _from_records(read_table(path)[0], str(path), fix_offsets)
    raise DataError(
        f"{path}: question-answering data are SQuAD .json, .jsonl or a .csv/.tsv/.parquet table"
    )


def _jsonl_records(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not JSON ({error.msg})") from None
        except RecursionError:
            raise DataError(f"{path}, line {number}: not JSON (nested too deeply)") from None
    return records


def _from_squad(path: Path, fix_offsets: bool) -> QuestionsData:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise DataError(f"{path}: not SQuAD JSON (expected {{'data': [articles]}})")
    rows = []
    for a, article in enumerate(articles):
        where = f"{path}, article {a}"
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{where}: no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise DataError(f"{where}, paragraph {p}: no 'qas' list")
            for question in paragraph["qas"]:
                if not isinstance(question, dict):
                    raise DataError(f"{where}, paragraph {p}: a question is not an object")
                rows.append({**question, "context": paragraph.get("context")})
    return _from_records(rows, str(path), fix_offsets)


def _from_records(rows: list, source: str, fix_offsets: bool) -> QuestionsData:
    data = QuestionsData([], [], [], [], source=source)
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{source}, record {number}: not an object with question and context")
        qid = str(row.get("id", number))
        where = f"{source}, question {qid if qid.isprintable() else repr(qid)}"
        question, context = row.get("question"), row.get("context")
        for name, value in (("question", question), ("context", context)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: no {name} (a non-empty text)")
        answers = [
            _checked(answer, context, where, fix_offsets) for answer in _answers_of(row, where)
        ]
        if row.get("is_impossible") and answers:
            raise DataError(f"{where}: is_impossible is true but it has answers")
        data.ids.append(qid)
        data.questions.append(question.strip())
        data.contexts.append(context)
        data.answers.append(answers)
        data.lines.append(where)
    if not len(data):
        raise DataError(f"{source}: holds no questions")
    return data


def _answers_of(row: dict, where: str) -> list[tuple[Any, Any]]:
    """The ``(text, start)`` pairs a record gives, in any of the accepted layouts."""
    if "answers" in row:
        given = row["answers"]
        if isinstance(given, dict):  # datasets' layout
            texts, starts = given.get("text", []), given.get("answer_start", [])
            if not all(_is_list(v) for v in (texts, starts)):
                raise DataError(f"{where}: answers' text and answer_start must be lists")
            texts, starts = list(texts), list(starts)
            if len(texts) != len(starts):
                raise DataError(f"{where}: answers has {len(texts)} texts and {len(starts)} starts")
            return list(zip(texts, starts, strict=True))
        if isinstance(given, str):  # a table cell holding JSON
            try:
                given = json.loads(given)
            except json.JSONDecodeError:
                raise DataError(f"{where}: answers is not a JSON list of answers") from None
            return _answers_of({"answers": given}, where)
        if not isinstance(given, list):
            raise DataError(f"{where}: answers must be a list of {{text, answer_start}}")
        pairs = []
        for answer in given:
            if not isinstance(answer, dict) or "text" not in answer:
                raise DataError(f"{where}: an answer is not {{text, answer_start}}")
            pairs.append((answer["text"], answer.get("answer_start")))
        return pairs
    text = row.get("answer_text")
    if text is None or text == "" or (isinstance(text, float) and text != text):
        return []  # no answer (a table's empty cell)
    return [(text, row.get("answer_start"))]


def _is_list(value: Any) -> bool:
    """Whether ``value`` is a list of values (a list, or an array of a DataFrame's cell)."""
    return hasattr(value, "__iter__") and not isinstance(value, str | bytes | dict)


def _checked(answer: tuple, context: str, where: str, fix_offsets: bool) -> Answer:
    """An answer whose start points at its text in ``context`` (moved to the nearest place
    the text occurs with ``fix_offsets``)."""
    text, start = answer
    if not isinstance(text, str) or not text:
        raise DataError(f"{where}: an answer's text is empty")
    try:
        start = int(start) if start is not None else -1
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: answer_start {start!r} is not a character offset") from None
    if 0 <= start and context[start : start + len(text)] == text:
        return text, start
    places = _occurrences(context, text)
    if not places:
        raise DataError(f"{where}: the answer {text!r} does not occur in its context")
    if not fix_offsets:
        found = context[max(start, 0) : max(start, 0) + len(text)]
        raise DataError(
            f"{where}: the answer {text!r} is not at character {start} of its context "
            f"(found {found!r}; it occurs at {places[0]}): --fix-offsets moves it to the "
            "nearest place it occurs"
        )
    return text, min(places, key=lambda at: abs(at - start))


def _occurrences(context: str, text: str) -> list[int]:
    places, at = [], context.find(text)
    while at >= 0:
        places.append(at)
        at = context.find(text, at + 1)
    return places


def split_by_context(data: QuestionsData, val_fraction: float, seed: int):
    """Indices of training and validation questions: a seeded ``val_fraction`` of the
    distinct contexts to validation, each with all its questions."""
    import numpy as np

    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
    contexts = list(dict.fromkeys(data.contexts))
    if len(contexts) < 2:
        raise DataError(f"{data.source}: a validation split needs at least 2 contexts")
    order = np.random.default_rng(seed).permutation(len(contexts))
    count = min(max(1, round(len(contexts) * val_fraction)), len(contexts) - 1)
    held = {contexts[i] for i in order[:count]}
    chosen = np.array([context in held for context in data.contexts])
    return np.flatnonzero(~chosen), np.flatnonzero(chosen)


def read_unlabelled(inputs: list) -> list[tuple[str, str]]:
    """Questions with their contexts to answer: pairs or dicts, or files (SQuAD JSON, JSONL,
    tables) of questions and contexts, whose answers, if any, are not needed."""
    items: list[tuple[str, str]] = []
    for given in inputs:
        if isinstance(given, dict | tuple | list):
            items.append(
                (given["question"], given["context"])
                if isinstance(given, dict)
                else (given[0], given[1])
            )
            continue
        path = Path(given).expanduser()
        if not path.is_file():
            raise DataError(
                f"{given}: no such file; a question-answering model reads tables of question "
                "and context (or graft predict --question ... --context ...)"
            )
        items += read_questions(path, fix_offsets=True).items
    return items
