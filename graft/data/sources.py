"""Reading a user's data: class folders, ``train/val/test`` folders, and CSV, TSV, JSONL or
Parquet tables, or tables held in memory (pandas DataFrames, ``datasets``; see
:mod:`graft.data.frames`, which reads them as CSV rows). Inputs are texts, image files or
audio files (:mod:`graft.data.audio`), told apart by the files' extensions.

A table's label column holds one class per row (multiclass), several labels joined by a
delimiter (multilabel, ``books;positive``) or a number (regression); ``task="auto"`` tells them
apart (:func:`infer_task`). A folder of class folders is always multiclass.

Every problem is reported as a :class:`~graft.errors.DataError` that names the folder, file,
row or column; files that cannot be read are skipped with a warning and listed in ``skipped``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from graft.data.audio import AUDIO_COLUMNS, check_audio, is_audio_file
from graft.data.dataset import TASKS, DataSplits, LabelledData, Task
from graft.data.frames import (
    FrameOrigin,
    LabelList,
    StoredImage,
    UnusableImage,
    frame_name,
    is_frame,
    is_image_value,
    is_split_mapping,
    read_frame,
    read_parquet,
    split_parts,
    store_image,
)
from graft.data.images import UnreadableImage, is_image_file, open_rgb
from graft.errors import ConfigError, DataError

log = logging.getLogger("graft")

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None, ".parquet": None}
#: A table's path, or the origin of a table held in memory: what messages name.
TableSource = Path | FrameOrigin
TEXT_SUFFIXES = frozenset({".txt"})
SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
LABEL_COLUMNS = ("label", "labels", "class", "target", "category", "y", "sentiment")
TEXT_COLUMNS = ("text", "sentence", "review", "content", "body", "document", "comment", "message")
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename", "filepath", "img")
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
#: Delimiters between the labels of one row that ``task="auto"`` recognises.
LABEL_DELIMITERS = (";", "|")
#: A numeric label column with more distinct values than this (or any non-integer) is a
#: regression target; fewer distinct integers (star ratings, digits) are classes.
MAX_NUMERIC_CLASSES = 20


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def load_splits(
    source: Any,
    *,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    task: Task | str = "auto",
    label_delimiter: str | None = None,
    audio_column: str | None = None,
) -> DataSplits:
    """Load ``source``; a folder with ``train/`` (and ``val/``, ``test/``) gives all three, as
    does a ``datasets.DatasetDict`` (or a dict) with ``train`` (and ``validation``, ``test``).

    Validation and test data are read as the task (and delimiter) of the training data.
    """
    options = dict(
        text_column=text_column,
        image_column=image_column,
        label_column=label_column,
        audio_column=audio_column,
    )
    if is_split_mapping(source):
        parts = split_parts(source, SPLIT_NAMES)
        names = {key: _split_name(source, key) for key in parts}
    else:
        path = source if is_frame(source) else _existing(source)
        parts, names = {"train": path, "val": None, "test": None}, {}
        if isinstance(path, Path) and path.is_dir():
            found = {key: _split_folder(path, spellings) for key, spellings in SPLIT_NAMES.items()}
            parts = found if found["train"] is not None else parts
    train = load_data(
        parts["train"],
        **options,
        task=task,
        label_delimiter=label_delimiter,
        name=names.get("train"),
    )
    options.update(task=train.task, label_delimiter=train.label_delimiter)
    val, test = (
        None if parts[key] is None else load_data(parts[key], **options, name=names.get(key))
        for key in ("val", "test")
    )
    return DataSplits(train=train, val=val, test=test)


def _split_name(splits: Any, key: str) -> str | None:
    """How messages name the in-memory table of split ``key`` (``val``) of ``splits``."""
    spelling = next((n for n in SPLIT_NAMES[key] if n in splits), None)
    part = splits.get(spelling) if spelling is not None else None
    return frame_name(part, spelling) if is_frame(part) else None


class UnknownFormatError(DataError):
    """Data that is neither class folders nor a table; ``path`` is it, ``reason`` says what it
    is not (a fit's message adds the formats of every other kind of task:
    :func:`graft.tasks.read_task_data`)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def load_data(
    source: Any,
    *,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    task: Task | str = "auto",
    label_delimiter: str | None = None,
    name: str | None = None,
    audio_column: str | None = None,
) -> LabelledData:
    """Load one labelled dataset: a folder of class folders, a table file (CSV, TSV, JSONL,
    Parquet), or a table held in memory (a pandas DataFrame, a ``datasets.Dataset``).

    ``task`` is ``"auto"`` (inferred from a table's labels), ``"multiclass"``, ``"multilabel"``
    or ``"regression"``; ``label_delimiter`` separates a multilabel row's labels (None: ``;``
    or ``|``, whichever the labels hold). ``name`` names an in-memory table in messages
    (default: its kind, ``DataFrame``, or ``datasets.Dataset 'train'`` for a named split).
    ``audio_column`` names a table's column of audio paths, as ``image_column`` does images.
    """
    columns = (text_column, image_column, audio_column)
    if task not in ("auto", *TASKS):
        raise ConfigError(f"--task must be auto or one of {', '.join(TASKS)}, got {task!r}")
    if is_frame(source):
        origin, rows, names = read_frame(source, name=name, label_delimiter=label_delimiter)
        return _from_rows(origin, rows, names, columns, label_column, task, label_delimiter)
    path = _existing(source)
    if path.is_dir():
        if task not in ("auto", "multiclass"):
            raise DataError(
                f"{path}: a folder of class folders holds one class per item; {task} data "
                "must come as a table (CSV, TSV or JSONL)"
            )
        return _load_class_folders(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        rows, names = read_table(path, label_delimiter=label_delimiter)
        return _from_rows(path, rows, names, columns, label_column, task, label_delimiter)
    raise UnknownFormatError(
        path,
        "not a folder of class folders (images, texts, audio) nor a table (.csv, .tsv, "
        ".jsonl, .parquet)",
    )


def read_one(
    data: Any,
    columns: dict[str, str | None],
    task: str | None = "auto",
    label_delimiter: str | None = None,
    split: str | None = None,
) -> LabelledData:
    """One labelled dataset (a folder, a table file, a table held in memory such as a
    DataFrame, or :class:`LabelledData`) read as ``task``; ``split`` (``val``) names an
    in-memory table in messages."""
    if isinstance(data, LabelledData):
        return data
    given = {k: v for k, v in columns.items() if v is not None}
    name = frame_name(data, split) if split and is_frame(data) else None
    return load_data(data, **given, task=task, label_delimiter=label_delimiter, name=name)


def _existing(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path.resolve()


def _split_folder(root: Path, names: Iterable[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


# Class folders ---------------------------------------------------------------------------------


def _outside(root: Path, value: str) -> bool:
    """Whether the path ``value`` of a table in ``root`` leads out of it (``..`` or absolute);
    checked on the path as written, so a symlinked folder inside ``root`` stays allowed."""
    joined = Path(os.path.normpath(root / value))
    return not joined.is_relative_to(Path(os.path.normpath(root)))


def _class_files(folder: Path) -> list[Path]:
    """Files under a class folder, hidden files and folders left out; a symlinked folder that
    leads back up to the class folder or above it (a loop, which would also reach the other
    classes) is not followed, nor is a folder seen before."""
    files, seen = [], set()
    top = folder.resolve()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            real = current.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real in seen:
            continue
        seen.add(real)
        for entry in sorted(current.iterdir()):
            if is_hidden(entry):
                continue
            if entry.is_dir():
                if entry.is_symlink() and top.is_relative_to(entry.resolve()):
                    log.warning("ignored %s: a symlink back up to %s", entry, entry.resolve())
                    continue
                stack.append(entry)
            elif entry.is_file():
                files.append(entry)
    return sorted(files)


def _load_class_folders(root: Path) -> LabelledData:
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not is_hidden(d))
    if not class_dirs:
        raise UnknownFormatError(
            root,
            "no class folders found; expected one sub-folder per class "
            "(or train/ and val/ folders of that shape)",
        )
    files_by_class = {d.name: _class_files(d) for d in class_dirs}
    modality = _folder_modality([f for files in files_by_class.values() for f in files])
    accept = {"image": is_image_file, "audio": is_audio_file}.get(modality, _is_text_file)
    items, labels, skipped = [], [], []
    classes = [name for name, files in files_by_class.items() if any(accept(f) for f in files)]
    empty = [name for name in files_by_class if name not in classes]
    if empty:
        log.warning("%s: class folder(s) with no usable file, left out: %s", root, ", ".join(empty))
    for label, name in enumerate(classes):
        for file in files_by_class[name]:
            if accept(file):
                items.append(str(file))
                labels.append(label)
    if modality == "text":
        items, labels, skipped = _read_text_files(items, labels)
    elif modality == "audio":
        items, labels, skipped = _check_audio(items, labels)
    else:
        items, labels, skipped = _check_images(items, labels)
    data = LabelledData(
        items, np.asarray(labels, dtype=np.int64), classes, modality, str(root), skipped
    )
    _require_classes(data)
    return data


def _folder_modality(files: list[Path]) -> str:
    """What class folders hold: audio when audio files outnumber images, else images when
    there are any, else texts."""
    images, sounds = sum(map(is_image_file, files)), sum(map(is_audio_file, files))
    if sounds > images:
        return "audio"
    return "image" if images else "text"


def _is_text_file(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES


def _read_text_files(paths: list[str], labels: list[int]):
    texts, kept, skipped = [], [], []
    for path, label in zip(paths, labels, strict=True):
        raw = Path(path).read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            log.warning("%s: not UTF-8, decoded as Latin-1", path)
        if not text.strip():
            skipped.append((path, "empty text"))
            continue
        texts.append(text.strip())
        kept.append(label)
    _warn_skipped(skipped)
    return texts, kept, skipped


def _check_images(paths: list[str], labels: list[int]):
    """Decode every image once (in threads) and keep those that decode."""

    def problem(path: str) -> str | None:
        try:
            open_rgb(path)
        except UnreadableImage as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(problem, paths))
    kept = [(p, y) for p, y, why in zip(paths, labels, problems, strict=True) if why is None]
    skipped = [(p, why) for p, why in zip(paths, problems, strict=True) if why is not None]
    _warn_skipped(skipped)
    return [p for p, _ in kept], [y for _, y in kept], skipped


def _check_audio(paths: list[str], labels: list):
    """Decode every audio file once (in threads) and keep those that decode."""
    kept, problems = check_audio(paths)
    skipped = [(paths[i], why) for i, why in problems.items()]
    _warn_skipped(skipped)
    return [paths[i] for i in kept], [labels[i] for i in kept], skipped


#: The skipped items logged one by one; the rest are counted in one line.
LOGGED_SKIPS = 10


def _warn_skipped(skipped: list[tuple[str, str]]) -> None:
    for where, why in skipped[:LOGGED_SKIPS]:
        log.warning("skipped %s: %s", where, why)
    if len(skipped) > LOGGED_SKIPS:
        more = len(skipped) - LOGGED_SKIPS
        log.warning("skipped %d more (the data's skipped list holds them all)", more)


def _require_classes(data: LabelledData) -> None:
    if len(data) == 0:
        raise DataError(f"{data.source}: no usable examples found")
    present = [name for name, count in data.class_counts().items() if count > 0]
    if len(present) < 2:
        only = f" (only {present[0]!r})" if present else ""
        raise DataError(f"{data.source}: classification needs at least 2 classes{only}")


# Tables ----------------------------------------------------------------------------------------


def read_table(
    path: Path, *, label_delimiter: str | dict[str, str | None] | None = None
) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a CSV, TSV, JSONL or Parquet file as dictionaries, and the column names; a
    Parquet file's cells read as CSV text (:mod:`graft.data.frames`), its lists of labels
    joined by ``label_delimiter`` (one, or one per column; None: ``;``)."""
    if path.suffix.lower() == ".parquet":
        return read_parquet(path, label_delimiter=label_delimiter)
    try:  # decoded, not read as text: a CR inside a quoted cell stays a CR
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 ({error.reason})") from None
    delimiter = TABLE_SUFFIXES[path.suffix.lower()]
    if delimiter is None:
        return _read_jsonl(path, text)
    return _read_delimited(path, text, delimiter)


class TableRow(dict):
    """A row of a table file: its cells by column, and ``line``, the line of the file it
    ends on (as an editor numbers them), which messages name."""

    __slots__ = ("line",)


def _read_delimited(path: Path, text: str, delimiter: str) -> tuple[list[TableRow], list[str]]:
    """The rows and columns of a CSV or TSV file's ``text``; rows of blank cells only are left
    out as blank lines are, so a file of millions of them holds no memory. Lines end where
    csv ends them (a cell may hold U+2028, a form feed or a file separator); a cell may be as
    long as the file."""
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # only ever raised
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[TableRow] = []
    try:
        columns = [c.strip() for c in next(reader, [])]
        if not columns:
            raise DataError(f"{path}: the table is empty (no header row)")
        for cells in reader:
            if not "".join(cells).strip():
                continue
            if len(cells) > len(columns):
                raise DataError(
                    f"{path}, row {reader.line_num}: {len(cells)} fields where the header "
                    f"has {len(columns)}"
                )
            row = TableRow(zip(columns, cells + [""] * (len(columns) - len(cells)), strict=True))
            row.line = reader.line_num
            rows.append(row)
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not a valid table ({error})") from None
    return rows, columns


def json_lines(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """The records of a JSON Lines file whose content is ``text``, each with its line number;
    blank lines are skipped. Lines end at ``\n`` only: a JSON string may hold U+2028 and
    the other line breaks ``str.splitlines`` would cut at."""
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        except RecursionError:
            raise DataError(f"{path}, line {number}: JSON nested too deeply to read") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object (one per line)")
        records.append((number, record))
    if not records:
        raise DataError(f"{path}: the file holds no records")
    return records


def _read_jsonl(path: Path, text: str) -> tuple[list[dict[str, str]], list[str]]:
    rows, columns = [], []
    for number, record in json_lines(path, text):
        for key in record:
            if key not in columns:
                columns.append(key)
        row = TableRow((k, "" if v is None else str(v)) for k, v in record.items())
        row.line = number
        rows.append(row)
    return rows, columns


def _listed(names: Iterable[str]) -> str:
    """Column names for a one-line message: as they are, or quoted when a name holds a line
    break or another character that does not print."""
    return ", ".join(n if n.isprintable() else repr(n) for n in names)


def _pick_column(
    path: TableSource,
    columns: list[str],
    given: str | None,
    candidates: tuple[str, ...],
    option: str,
) -> str | None:
    if given is not None:
        if given not in columns:
            raise DataError(
                f"{path}: no column {given!r} (option {option}); columns are {_listed(columns)}"
            )
        return given
    lowered = {c.lower(): c for c in columns}
    return next((lowered[name] for name in candidates if name in lowered), None)


def _detect_input_column(
    path: TableSource,
    rows: list[dict[str, str]],
    columns: list[str],
    labels: Collection[str],
    text_column: str | None,
    image_column: str | None,
    audio_column: str | None = None,
) -> tuple[str, str]:
    """The column holding the inputs, and its modality; ``labels`` are the label columns."""
    if text_column and image_column:
        raise DataError(f"{path}: give --text-column or --image-column, not both")
    if audio_column and (text_column or image_column):
        raise DataError(f"{path}: give --audio-column alone, not with --text- or --image-column")
    if audio_column:
        return _pick_column(path, columns, audio_column, (), "--audio-column"), "audio"
    # a column named like an image (audio) column holds paths when most values look like image
    # (audio) files (the others are then skipped, named), or all of them when a text column is
    # there too
    has_text = text_column is not None or any(c in TEXT_COLUMNS for c in columns)
    share = 1.0 if has_text else 0.5
    audio = _pick_column(path, columns, image_column, AUDIO_COLUMNS, "--image-column")
    if audio is not None and _looks_like_paths(rows, audio, share, is_audio_file):
        return audio, "audio"
    image = _pick_column(path, columns, image_column, IMAGE_COLUMNS, "--image-column")
    if image is not None and (image_column or _looks_like_paths(rows, image, share=share)):
        return image, "image"
    text = _pick_column(path, columns, text_column, TEXT_COLUMNS, "--text-column")
    if text is not None:
        return text, "text"
    others = [c for c in columns if c not in labels]
    for modality, looks_like in (("image", is_image_file), ("audio", is_audio_file)):
        path_columns = [c for c in others if _looks_like_paths(rows, c, 1.0, looks_like)]
        if len(path_columns) == 1:
            return path_columns[0], modality
    if len(others) == 1:
        return others[0], "text"
    raise DataError(
        f"{path}: cannot tell which column holds the inputs among {_listed(others)}; "
        "name it with --text-column, --image-column or --audio-column"
    )


def _looks_like_paths(
    rows: list[dict[str, str]],
    column: str,
    share: float = 1.0,
    looks_like: Callable[[Path], bool] = is_image_file,
) -> bool:
    """Whether at least ``share`` of the column's first 200 values name image files (or the
    files ``looks_like`` accepts)."""
    values = [row.get(column, "") for row in rows[:200] if row.get(column)]
    looking = sum(looks_like(Path(v.strip())) for v in values if isinstance(v, str))
    return bool(values) and looking >= share * len(values)


def _from_rows(
    path: TableSource,
    rows: list[dict[str, str]],
    columns: list[str],
    inputs: tuple[str | None, str | None, str | None],
    label_column: str | None,
    task: Task | str = "auto",
    label_delimiter: str | None = None,
) -> LabelledData:
    """The labelled data of a table's rows; ``inputs``: the text, image and audio columns
    given (None where not)."""
    label = _pick_column(path, columns, label_column, LABEL_COLUMNS, "--label-column")
    if label is None:
        raise DataError(
            f"{path}: no label column found among {_listed(columns)}; name it with --label-column"
        )
    column, modality = _detect_input_column(path, rows, columns, (label,), *inputs)
    listed = label_list_delimiter(path, rows, label)
    if listed is not None:  # a column of lists: multilabel, joined by the given delimiter
        task = "multilabel" if task == "auto" else task
        label_delimiter = label_delimiter or listed

    def read_label(row: dict[str, str]) -> tuple[str, str | None]:
        name = (row.get(label) or "").strip()
        return name, None if name else f"missing label in column {label!r}"

    items, names, wheres, skipped = read_labelled_rows(path, rows, column, modality, read_label)
    task, delimiter = infer_task(path, label, names, task, label_delimiter)
    labels, classes = _encode_labels(label, names, wheres, task, delimiter)
    _warn_skipped(skipped)
    if modality in ("image", "audio"):
        check = _check_images if modality == "image" else _check_audio
        items, kept, unreadable = check(items, list(range(len(items))))
        labels = labels[np.asarray(kept, dtype=np.int64)]
        skipped += unreadable
    data = LabelledData(items, labels, classes, modality, str(path), skipped, task, delimiter)
    if task == "regression":
        if len(data) == 0:
            raise DataError(f"{data.source}: no usable examples found")
    else:
        _require_classes(data)
    return data


def read_labelled_rows(
    path: TableSource,
    rows: list[dict[str, str]],
    column: str,
    modality: str,
    read_label: Callable[[dict[str, str]], tuple[Any, str | None]],
) -> tuple[list[str], list, list[str], list[tuple[str, str]]]:
    """The inputs of ``rows`` (column ``column``), what ``read_label`` reads of each row's
    labels, where each row is, and the skipped rows with why: ``read_label`` returns the
    labels and, when the row has none, the reason to skip it."""
    items, labels, wheres, skipped = [], [], [], []
    for where, row in numbered_rows(path, rows):
        label, missing = read_label(row)
        if missing is not None:
            skipped.append((where, missing))
            continue
        value, problem = row_input(path, row, column, modality)
        if problem is not None:
            skipped.append((where, problem))
            continue
        items.append(value)
        labels.append(label)
        wheres.append(where)
    return items, labels, wheres, skipped


def numbered_rows(path: TableSource, rows: list[dict[str, str]]):
    """``(where, row)`` for each row of the table at ``path``, ``where`` naming the file and
    the row's number as an editor shows it (after a CSV's header line); a Parquet file's and
    an in-memory table's rows are numbered from 0, as pandas and ``datasets`` index them."""
    if isinstance(path, FrameOrigin):
        for number, row in enumerate(rows):
            yield path.where(number), row
        return
    start = {".jsonl": 1, ".parquet": 0}.get(path.suffix.lower(), 2)
    for number, row in enumerate(rows, start=start):
        yield f"{path}, row {getattr(row, 'line', number)}", row


def label_list_delimiter(path: TableSource, rows: list[dict[str, str]], column: str) -> str | None:
    """The delimiter that joined the lists of labels of ``column`` (None: it holds none).

    Raises:
        DataError: a label in a list holds that delimiter, so it would split in two.
    """
    delimiter = None
    for where, row in numbered_rows(path, rows):
        cell = row.get(column)
        if isinstance(cell, LabelList):
            delimiter = cell.delimiter
            bad = next((part for part in cell.parts if delimiter in part), None)
            if bad is not None:
                raise DataError(
                    f"{where}: the label {bad!r} in column {column!r} holds {delimiter!r}, "
                    "which joins the labels of a list; give another --label-delimiter"
                )
    return delimiter


def row_input(
    path: TableSource, row: dict[str, str], column: str, modality: str
) -> tuple[str, str | None]:
    """A row's input (a text, or an image's or audio file's absolute path) and why it is
    unusable (None when it is usable): an empty text, an image value that is not an image, or
    a path that does not exist or that leads outside the table's folder (an in-memory table's
    paths are read from the current folder and may lead anywhere)."""
    cell = row.get(column)
    noun = {"image": "image", "audio": "audio"}.get(modality)
    if noun is not None and isinstance(cell, UnusableImage | LabelList):
        what = "an image" if noun == "image" else "an audio file"
        return "", getattr(cell, "reason", f"a list in column {column!r} is not {what}")
    value = (cell or "").strip()
    if noun is None:
        return value, None if value else f"empty text in column {column!r}"
    if value and not _may_be_path(Path(value)):
        return value, f"{noun} {value!r} is not a path (it holds a NUL character)"
    confined = not isinstance(path, FrameOrigin) and not isinstance(cell, StoredImage)
    if value and confined and _outside(path.parent, value):
        return value, (
            f"{noun} {value!r} is outside {path.parent}, the table's folder (paths are read "
            "relative to it)"
        )
    file = (path.parent / value).resolve() if value else None
    if file is None or not file.is_file():
        return value, f"{noun} {value!r} does not exist"
    return str(file), None


def infer_task(
    path: TableSource, column: str, names: list[str], task: str, delimiter: str | None
) -> tuple[Task, str | None]:
    """The task of a label column and, for multilabel, its delimiter.

    ``auto``: labels holding ``;`` or ``|`` (or any given ``delimiter``) are multilabel; numbers
    with more than :data:`MAX_NUMERIC_CLASSES` distinct values, or any non-integer, are a
    regression target; anything else is multiclass.
    """
    if delimiter is None and task in ("auto", "multilabel"):
        found = [d for d in LABEL_DELIMITERS if any(d in name for name in names)]
        if len(found) > 1:
            raise DataError(
                f"{path}: the labels in column {column!r} hold both {found[0]!r} and "
                f"{found[1]!r}; say which one separates labels with --label-delimiter"
            )
        delimiter = found[0] if found else None
    if task == "auto":
        if delimiter is not None:
            task = "multilabel"
        elif _numeric_target(names):
            task = "regression"
        else:
            task = "multiclass"
    if task == "multilabel":
        return "multilabel", delimiter or LABEL_DELIMITERS[0]
    return task, None


def _numeric_target(names: list[str]) -> bool:
    try:
        values = [float(name) for name in names]
    except ValueError:
        return False
    return len(set(values)) > MAX_NUMERIC_CLASSES or not all(v.is_integer() for v in values)


def _encode_labels(
    column: str, names: list[str], wheres: list[str], task: str, delimiter: str | None
) -> tuple[np.ndarray, list[str]]:
    """The label array of ``task`` (see :class:`LabelledData`) and the class names."""
    if task == "regression":
        values = []
        for name, where in zip(names, wheres, strict=True):
            try:
                value = float(name)
            except ValueError:
                raise DataError(
                    f"{where}: {name!r} in column {column!r} is not a number, and a regression "
                    "target must be one"
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"{where}: the regression target in column {column!r} is {name!r}; "
                    "it must be a finite number"
                )
            values.append(value)
        return np.asarray(values, dtype=np.float32), [column]
    if task == "multilabel":
        sets = []
        for name, where in zip(names, wheres, strict=True):
            labels = {part.strip() for part in name.split(delimiter)} - {""}
            if not labels:
                raise DataError(
                    f"{where}: empty label set {name!r} in column {column!r}; give at least "
                    f"one label (several separated by {delimiter!r})"
                )
            sets.append(labels)
        classes = _sorted_labels(set().union(*sets))
        position = {name: i for i, name in enumerate(classes)}
        rows = np.zeros((len(sets), len(classes)), dtype=np.float32)
        for row, labels in zip(rows, sets, strict=True):
            row[[position[name] for name in labels]] = 1.0
        return rows, classes
    classes = _sorted_labels(set(names))
    position = {name: i for i, name in enumerate(classes)}
    return np.asarray([position[name] for name in names], dtype=np.int64), classes


def _sorted_labels(names: set[str]) -> list[str]:
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


# Unlabelled inputs for prediction ----------------------------------------------------------------


def load_inputs(inputs: Iterable[Any], modality: str, *, column: str | None = None) -> list[str]:
    """Items to predict: image or audio files or folders of them, a table's input column (a
    CSV, TSV, JSONL or Parquet file, a pandas DataFrame or Series, a ``datasets.Dataset``),
    images held in memory (PIL images, arrays), or texts.

    For a text model, an argument that is not an existing file is taken as the text itself.
    """
    items: list[str] = []
    named: list[str] = []  # the files and folders given, which an empty answer names
    for value in inputs:
        if is_frame(value):
            origin, rows, columns = read_frame(value)
            items += _table_inputs(origin, rows, columns, modality, column)
        elif is_image_value(value):
            items.append(_memory_image(value, modality))
        else:
            text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
            items += _path_inputs(text, modality, column)
            named.append(text[:80])
    if not items:
        where = f"{', '.join(named[:3])}: " if named else ""
        raise DataError(f"{where}nothing to predict: the inputs hold no image, audio or text")
    return items


def _path_inputs(value: str, modality: str, column: str | None) -> list[str]:
    """The items one argument names: a folder's files, a table's input column, a file, or
    (for a text model) the text itself."""
    path = Path(value).expanduser()
    noun = "an audio" if modality == "audio" else "an image"
    if not _may_be_path(path):  # a text too long, or with characters no path can hold
        if modality != "text":
            raise DataError(f"{value[:80]!r}: not {noun} file or folder")
        return [value]
    if path.is_dir():
        wanted = {"image": is_image_file, "audio": is_audio_file}.get(
            modality, lambda f: f.suffix == ".txt"
        )
        return [_read_item(f, modality) for f in _class_files(path) if wanted(f)]
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        rows, columns = read_table(path.resolve())
        return _table_inputs(path, rows, columns, modality, column)
    if path.is_file():
        return [_read_item(path, modality)]
    if modality == "text":
        return [value]
    raise DataError(f"{value}: no such {noun.split()[1]} file or folder")


def _table_inputs(
    path: TableSource,
    rows: list[dict[str, str]],
    columns: list[str],
    modality: str,
    column: str | None,
) -> list[str]:
    """A table's input column (``column``, else one named like a text, image or audio column,
    else its only column): texts, or image or audio paths read from the table's folder."""
    candidates = {"image": IMAGE_COLUMNS, "audio": AUDIO_COLUMNS}.get(modality, TEXT_COLUMNS)
    files = modality in ("image", "audio")
    name = _pick_column(path, columns, column, candidates, "--column")
    if name is None and len(columns) == 1:
        name = columns[0]
    if name is None:
        raise DataError(
            f"{path}: no {modality} column among {_listed(columns)}; name it with --column"
        )
    if not rows:
        raise DataError(f"{path}: the table holds no rows")
    items = []
    for where, row in numbered_rows(path, rows):
        cell = row.get(name)
        if modality == "image" and isinstance(cell, UnusableImage):
            raise DataError(f"{where}: {cell.reason}")
        value = (cell or "").strip()
        if files and not value:
            raise DataError(f"{where}: no {modality} in column {name!r}")
        if files and not _may_be_path(Path(value)):
            raise DataError(f"{where}: {value!r} in column {name!r} is not a path")
        items.append(str((path.parent / value).resolve()) if files else value)
    return items


def _memory_image(value: Any, modality: str) -> str:
    """The stored file of an image given in memory (see :func:`store_image`)."""
    if modality != "image":
        raise DataError(f"an image ({type(value).__name__}) was given to a {modality} model")
    try:
        return store_image(value)
    except UnreadableImage as error:
        raise DataError(f"an image given as a {type(value).__name__}: {error}") from None


def _may_be_path(path: Path) -> bool:
    """Whether the file system can be asked about ``path`` at all."""
    if "\x00" in str(path):  # Path.exists answers False, Path.resolve raises ValueError
        return False
    try:
        path.exists()
    except (OSError, ValueError):  # ENAMETOOLONG, an embedded NUL
        return False
    return True


def _read_item(path: Path, modality: str) -> str:
    if modality in ("image", "audio"):
        return str(path.resolve())
    return path.read_text(encoding="utf-8", errors="replace").strip()
