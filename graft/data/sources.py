"""Reading a user's data: class folders, ``train/val/test`` folders, and CSV, TSV or JSONL tables.

A table's label column holds one class per row (multiclass), several labels joined by a
delimiter (multilabel, ``books;positive``) or a number (regression); ``task="auto"`` tells them
apart (:func:`infer_task`). A folder of class folders is always multiclass.

Every problem is reported as a :class:`~graft.errors.DataError` that names the folder, file,
row or column; files that cannot be read are skipped with a warning and listed in ``skipped``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from graft.data.dataset import TASKS, DataSplits, LabelledData, Task
from graft.data.images import UnreadableImage, is_image_file, open_rgb
from graft.errors import ConfigError, DataError

log = logging.getLogger("graft")

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}
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
    source: str | Path,
    *,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    task: Task | str = "auto",
    label_delimiter: str | None = None,
) -> DataSplits:
    """Load ``source``; a folder with ``train/`` (and ``val/``, ``test/``) gives all three.

    Validation and test data are read as the task (and delimiter) of the training data.
    """
    path = _existing(source)
    options = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    if path.is_dir():
        found = {key: _split_folder(path, names) for key, names in SPLIT_NAMES.items()}
        if found["train"] is not None:
            train = load_data(found["train"], **options, task=task, label_delimiter=label_delimiter)
            options.update(task=train.task, label_delimiter=train.label_delimiter)
            return DataSplits(
                train=train,
                val=load_data(found["val"], **options) if found["val"] else None,
                test=load_data(found["test"], **options) if found["test"] else None,
            )
    return DataSplits(train=load_data(path, **options, task=task, label_delimiter=label_delimiter))


def load_data(
    source: str | Path,
    *,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    task: Task | str = "auto",
    label_delimiter: str | None = None,
) -> LabelledData:
    """Load one labelled dataset: a folder of class folders, or a table.

    ``task`` is ``"auto"`` (inferred from a table's labels), ``"multiclass"``, ``"multilabel"``
    or ``"regression"``; ``label_delimiter`` separates a multilabel row's labels (None: ``;``
    or ``|``, whichever the labels hold).
    """
    if task not in ("auto", *TASKS):
        raise ConfigError(f"--task must be auto or one of {', '.join(TASKS)}, got {task!r}")
    path = _existing(source)
    if path.is_dir():
        if task not in ("auto", "multiclass"):
            raise DataError(
                f"{path}: a folder of class folders holds one class per item; {task} data "
                "must come as a table (CSV, TSV or JSONL)"
            )
        return _load_class_folders(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        rows, columns = read_table(path)
        return _from_rows(
            path, rows, columns, text_column, image_column, label_column, task, label_delimiter
        )
    raise DataError(f"{path}: not a folder of class folders nor a table (.csv, .tsv, .jsonl)")


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
        raise DataError(
            f"{root}: no class folders found; expected one sub-folder per class "
            "(or train/ and val/ folders of that shape)"
        )
    files_by_class = {d.name: _class_files(d) for d in class_dirs}
    all_files = [f for files in files_by_class.values() for f in files]
    modality = "image" if any(is_image_file(f) for f in all_files) else "text"
    accept = is_image_file if modality == "image" else (lambda f: f.suffix.lower() in TEXT_SUFFIXES)
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
    else:
        items, labels, skipped = _check_images(items, labels)
    data = LabelledData(
        items, np.asarray(labels, dtype=np.int64), classes, modality, str(root), skipped
    )
    _require_classes(data)
    return data


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


def _warn_skipped(skipped: list[tuple[str, str]]) -> None:
    for where, why in skipped:
        log.warning("skipped %s: %s", where, why)


def _require_classes(data: LabelledData) -> None:
    if len(data) == 0:
        raise DataError(f"{data.source}: no usable examples found")
    present = [name for name, count in data.class_counts().items() if count > 0]
    if len(present) < 2:
        only = f" (only {present[0]!r})" if present else ""
        raise DataError(f"{data.source}: classification needs at least 2 classes{only}")


# Tables ----------------------------------------------------------------------------------------


def read_table(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a CSV, TSV or JSONL file as dictionaries, and the column names."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 ({error.reason})") from None
    delimiter = TABLE_SUFFIXES[path.suffix.lower()]
    if delimiter is None:
        return _read_jsonl(path, text)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if not columns:
        raise DataError(f"{path}: the table is empty (no header row)")
    rows = []
    for row in reader:
        extra = row.pop(None, None)
        if extra:
            raise DataError(
                f"{path}, row {reader.line_num}: {len(columns) + len(extra)} fields where the "
                f"header has {len(columns)}"
            )
        rows.append({k.strip(): (v if v is not None else "") for k, v in row.items()})
    return rows, columns


def _read_jsonl(path: Path, text: str) -> tuple[list[dict[str, str]], list[str]]:
    rows, columns = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object")
        for key in record:
            if key not in columns:
                columns.append(key)
        rows.append({k: "" if v is None else str(v) for k, v in record.items()})
    if not rows:
        raise DataError(f"{path}: the file holds no records")
    return rows, columns


def _pick_column(
    path: Path, columns: list[str], given: str | None, candidates: tuple[str, ...], option: str
) -> str | None:
    if given is not None:
        if given not in columns:
            raise DataError(
                f"{path}: no column {given!r} (option {option}); columns are {', '.join(columns)}"
            )
        return given
    lowered = {c.lower(): c for c in columns}
    return next((lowered[name] for name in candidates if name in lowered), None)


def _detect_input_column(
    path: Path,
    rows: list[dict[str, str]],
    columns: list[str],
    labels: Collection[str],
    text_column: str | None,
    image_column: str | None,
) -> tuple[str, str]:
    """The column holding the inputs, and its modality; ``labels`` are the label columns."""
    if text_column and image_column:
        raise DataError(f"{path}: give --text-column or --image-column, not both")
    image = _pick_column(path, columns, image_column, IMAGE_COLUMNS, "--image-column")
    # a column named like an image column holds paths when most values look like image files
    # (the others are then skipped, named), or all of them when a text column is there too
    has_text = text_column is not None or any(c in TEXT_COLUMNS for c in columns)
    share = 1.0 if has_text else 0.5
    if image is not None and (image_column or _looks_like_paths(rows, image, share=share)):
        return image, "image"
    text = _pick_column(path, columns, text_column, TEXT_COLUMNS, "--text-column")
    if text is not None:
        return text, "text"
    others = [c for c in columns if c not in labels]
    path_columns = [c for c in others if _looks_like_paths(rows, c)]
    if len(path_columns) == 1:
        return path_columns[0], "image"
    if len(others) == 1:
        return others[0], "text"
    raise DataError(
        f"{path}: cannot tell which column holds the inputs among {', '.join(others)}; "
        "name it with --text-column or --image-column"
    )


def _looks_like_paths(rows: list[dict[str, str]], column: str, share: float = 1.0) -> bool:
    """Whether at least ``share`` of the column's first 200 values name image files."""
    values = [row.get(column, "") for row in rows[:200] if row.get(column)]
    looking = sum(is_image_file(Path(v.strip())) for v in values)
    return bool(values) and looking >= share * len(values)


def _from_rows(
    path: Path,
    rows: list[dict[str, str]],
    columns: list[str],
    text_column: str | None,
    image_column: str | None,
    label_column: str | None,
    task: Task | str = "auto",
    label_delimiter: str | None = None,
) -> LabelledData:
    label = _pick_column(path, columns, label_column, LABEL_COLUMNS, "--label-column")
    if label is None:
        raise DataError(
            f"{path}: no label column found among {', '.join(columns)}; name it with --label-column"
        )
    column, modality = _detect_input_column(
        path, rows, columns, (label,), text_column, image_column
    )

    def read_label(row: dict[str, str]) -> tuple[str, str | None]:
        name = (row.get(label) or "").strip()
        return name, None if name else f"missing label in column {label!r}"

    items, names, wheres, skipped = read_labelled_rows(path, rows, column, modality, read_label)
    task, delimiter = infer_task(path, label, names, task, label_delimiter)
    labels, classes = _encode_labels(label, names, wheres, task, delimiter)
    _warn_skipped(skipped)
    if modality == "image":
        items, kept, unreadable = _check_images(items, list(range(len(items))))
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
    path: Path,
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


def numbered_rows(path: Path, rows: list[dict[str, str]]):
    """``(where, row)`` for each row of the table at ``path``, ``where`` naming the file and
    the row's number as an editor shows it (after a CSV's header line)."""
    start = 2 if path.suffix.lower() != ".jsonl" else 1
    for number, row in enumerate(rows, start=start):
        yield f"{path}, row {number}", row


def row_input(
    path: Path, row: dict[str, str], column: str, modality: str
) -> tuple[str, str | None]:
    """A row's input (a text, or an image's absolute path) and why it is unusable (None when
    it is usable): an empty text, or an image path that does not exist or that leads outside
    the table's folder."""
    value = (row.get(column) or "").strip()
    if modality != "image":
        return value, None if value else f"empty text in column {column!r}"
    if value and _outside(path.parent, value):
        return value, (
            f"image {value!r} is outside {path.parent}, the table's folder (paths are read "
            "relative to it)"
        )
    file = (path.parent / value).resolve() if value else None
    if file is None or not file.is_file():
        return value, f"image {value!r} does not exist"
    return str(file), None


def infer_task(
    path: Path, column: str, names: list[str], task: str, delimiter: str | None
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


def load_inputs(inputs: list[str], modality: str, *, column: str | None = None) -> list[str]:
    """Items to predict: image files or folders of them, a table's input column, or texts.

    For a text model, an argument that is not an existing file is taken as the text itself.
    """
    items: list[str] = []
    for value in inputs:
        path = Path(value).expanduser()
        if not _may_be_path(path):  # a text too long, or with characters no path can hold
            if modality != "text":
                raise DataError(f"{value[:80]!r}: not an image file or folder")
            items.append(value)
        elif path.is_dir():
            wanted = is_image_file if modality == "image" else lambda f: f.suffix == ".txt"
            files = [f for f in _class_files(path) if wanted(f)]
            items += [_read_item(f, modality) for f in files]
        elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
            rows, columns = read_table(path.resolve())
            candidates = IMAGE_COLUMNS if modality == "image" else TEXT_COLUMNS
            name = _pick_column(path, columns, column, candidates, "--column")
            if name is None:
                raise DataError(
                    f"{path}: no {modality} column among {', '.join(columns)}; "
                    "name it with --column"
                )
            for row in rows:
                value = (row.get(name) or "").strip()
                items.append(str((path.parent / value).resolve()) if modality == "image" else value)
        elif path.is_file():
            items.append(_read_item(path, modality))
        elif modality == "text":
            items.append(value)
        else:
            raise DataError(f"{value}: no such image file or folder")
    if not items:
        raise DataError("nothing to predict: the inputs hold no image or text")
    return items


def _may_be_path(path: Path) -> bool:
    """Whether the file system can be asked about ``path`` at all."""
    try:
        path.exists()
    except (OSError, ValueError):  # ENAMETOOLONG, an embedded NUL
        return False
    return True


def _read_item(path: Path, modality: str) -> str:
    if modality == "image":
        return str(path.resolve())
    return path.read_text(encoding="utf-8", errors="replace").strip()
