"""Data with several label columns, one per task, for multi-task training.

A table with, say, ``text, sentiment, topic, rating`` columns trains one head per task column
on a shared backbone. Each column's task is inferred as a single label column's is
(:func:`graft.data.sources.infer_task`) unless given, and its labels are encoded alike
(:func:`graft.data.sources._encode_labels`). A row may lack the label of some tasks: it still
trains the others. A row with no label at all, an empty text or a missing image is skipped.

The targets of all tasks are packed side by side into one float32 matrix (``labels``), one row
per item, so that the loaders, samplers and feature cache of a single-task fit carry them
unchanged: a multiclass task takes one column (the class index), a multilabel task one column
per label (0 or 1) and a regression task one column (the value). NaN in a task's columns marks
a missing label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from graft.backbones.base import Modality
from graft.data.dataset import LabelledData, Task
from graft.data.frames import frame_name, is_frame, is_split_mapping, read_frame
from graft.data.sources import (
    TABLE_SUFFIXES,
    TableSource,
    _check_audio,
    _check_images,
    _detect_input_column,
    _encode_labels,
    _existing,
    _warn_skipped,
    infer_task,
    label_list_delimiter,
    read_labelled_rows,
    read_table,
)
from graft.errors import DataError


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task fit: its label column, kind and classes.

    Attributes:
        name: the label column, which names the task.
        kind: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        classes: class (or label) names in label order; for regression, ``(name,)``.
        label_delimiter: a multilabel task's separator between the labels of a row.
    """

    name: str
    kind: Task
    classes: tuple[str, ...]
    label_delimiter: str | None = None

    @property
    def width(self) -> int:
        """Columns the task takes in the packed targets."""
        return len(self.classes) if self.kind == "multilabel" else 1

    @property
    def outputs(self) -> int:
        """Outputs of the task's head: a logit per class or label, or one value."""
        return 1 if self.kind == "regression" else len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "classes": list(self.classes),
            "label_delimiter": self.label_delimiter,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TaskSpec:
        return cls(
            record["name"], record["kind"], tuple(record["classes"]), record.get("label_delimiter")
        )


@dataclass
class MultiTaskData:
    """Items with the labels of several tasks, packed (see the module docstring).

    Attributes:
        items: image file paths (absolute) or text strings.
        labels: float32 ``[n, sum of the tasks' widths]``; NaN where a task's label is missing.
        tasks: the tasks, in the order of their columns in ``labels``.
        modality: ``"image"`` or ``"text"``.
        source: where the data came from, for messages.
        skipped: ``(row, reason)`` for rows left out.
    """

    items: list[str]
    labels: np.ndarray
    tasks: list[TaskSpec]
    modality: Modality
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _view: LabelledData | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def spec(self, name: str) -> TaskSpec:
        return self.tasks[self.names.index(name)]

    def columns(self, name: str) -> slice:
        """The columns of task ``name`` in ``labels``."""
        return task_columns(self.tasks)[name]

    def present(self, name: str) -> np.ndarray:
        """bool ``[n]``: the rows that carry a label of task ``name``."""
        return ~np.isnan(self.labels[:, self.columns(name)]).any(axis=1)

    def task_data(self, name: str) -> LabelledData:
        """The rows labelled for task ``name``, as single-task data of that task (in the
        order of ``items``; :meth:`present` says which rows they are)."""
        spec = self.spec(name)
        rows = np.flatnonzero(self.present(name))
        values = self.labels[rows, self.columns(name)]
        if spec.kind == "multiclass":
            labels = values[:, 0].astype(np.int64)
        elif spec.kind == "regression":
            labels = values[:, 0].astype(np.float32)
        else:
            labels = values.astype(np.float32)
        return LabelledData(
            [self.items[i] for i in rows],
            labels,
            list(spec.classes),
            self.modality,
            f"{self.source}, column {name!r}",
            task=spec.kind,
            label_delimiter=spec.label_delimiter,
        )

    def subset(self, indices: np.ndarray | list[int]) -> MultiTaskData:
        indices = np.asarray(indices, dtype=np.int64)
        return MultiTaskData(
            [self.items[i] for i in indices],
            self.labels[indices],
            list(self.tasks),
            self.modality,
            self.source,
            list(self.skipped),
        )

    def labelled_counts(self) -> dict[str, int]:
        """Rows labelled for each task."""
        return {name: int(self.present(name).sum()) for name in self.names}

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Each task's examples per class (per label; empty for regression)."""
        return {name: self.task_data(name).class_counts() for name in self.names}

    def relabel(self, tasks: list[TaskSpec]) -> MultiTaskData:
        """The same rows with the labels of ``tasks`` (a model's), re-indexed into their
        classes.

        Raises:
            DataError: a task is missing, of another kind, or has a label the model never saw.
        """
        packed = np.full((len(self), sum(t.width for t in tasks)), np.nan, dtype=np.float32)
        for task, columns in zip(tasks, task_columns(tasks).values(), strict=True):
            if task.name not in self.names:
                raise DataError(f"{self.source}: no column {task.name!r}, a task of the model")
            own = self.spec(task.name)
            if own.kind != task.kind:
                raise DataError(
                    f"{self.source}: column {task.name!r} holds {own.kind} labels; the "
                    f"model's task {task.name!r} is {task.kind}"
                )
            part = self.task_data(task.name).relabel(list(task.classes))
            packed[self.present(task.name), columns] = _packed(part.labels, task)
        return MultiTaskData(
            self.items, packed, list(tasks), self.modality, self.source, self.skipped
        )

    def _as_labelled(self) -> LabelledData:
        """The items with the packed labels, for what does not depend on the tasks: content
        keys (computed once), duplicates and the content hash."""
        if self._view is None:
            self._view = LabelledData(
                self.items, self.labels, self.names, self.modality, self.source
            )
        return self._view

    def content_keys(self) -> list[bytes]:
        return self._as_labelled().content_keys()

    def duplicates(self) -> dict:
        return self._as_labelled().duplicates()

    def content_hash(self) -> str:
        return self._as_labelled().content_hash()


def task_columns(tasks: list[TaskSpec]) -> dict[str, slice]:
    """Each task's columns in the packed targets."""
    columns, start = {}, 0
    for task in tasks:
        columns[task.name] = slice(start, start + task.width)
        start += task.width
    return columns


def unpack_targets(targets: torch.Tensor, tasks: list[TaskSpec]) -> dict[str, torch.Tensor]:
    """A batch of packed targets ``[b, width]`` as each task's ``[b, task width]`` (NaN rows
    where its label is missing)."""
    return {name: targets[:, columns] for name, columns in task_columns(tasks).items()}


def _packed(labels: np.ndarray, task: TaskSpec) -> np.ndarray:
    """A single task's label array as its packed columns ``[n, width]``."""
    return np.asarray(labels, dtype=np.float32).reshape(len(labels), task.width)


def load_multitask(
    source: Any,
    tasks: dict[str, str],
    *,
    text_column: str | None = None,
    image_column: str | None = None,
    label_delimiter: str | dict[str, str | None] | None = None,
) -> MultiTaskData:
    """Load a table (CSV, TSV, JSONL or Parquet file, pandas DataFrame, ``datasets.Dataset``)
    whose columns ``tasks`` (column -> ``auto`` or a kind) each hold the labels of one task;
    ``label_delimiter`` separates the labels of a multilabel task's row (one for all tasks,
    or one per task; None: ``;`` or ``|``). A column of lists is a multilabel task.

    Raises:
        DataError: the data are not a table, a task column does not exist, holds no label in
            any usable row, or (a classification task) fewer than two classes.
    """
    path, rows, columns = _read_task_table(source, label_delimiter)
    for name in tasks:
        if name not in columns:
            raise DataError(
                f"{path}: no column {name!r} (option --tasks); columns are {', '.join(columns)}"
            )
    column, modality = _detect_input_column(
        path, rows, columns, tuple(tasks), text_column, image_column
    )
    if column in tasks:
        raise DataError(f"{path}: column {column!r} holds the inputs; it cannot also be a task")

    def read_labels(row: dict[str, str]) -> tuple[dict[str, str], str | None]:
        labels = {name: (row.get(name) or "").strip() for name in tasks}
        missing = f"no label in any task column ({', '.join(tasks)})"
        return labels, None if any(labels.values()) else missing

    items, names, wheres, skipped = read_labelled_rows(path, rows, column, modality, read_labels)
    _warn_skipped(skipped)
    specs, parts = [], []
    for name, kind in tasks.items():
        delimiter = (
            label_delimiter.get(name) if isinstance(label_delimiter, dict) else label_delimiter
        )
        listed = label_list_delimiter(path, rows, name)
        if listed is not None:  # a column of lists: a multilabel task
            kind, delimiter = ("multilabel" if kind == "auto" else kind), delimiter or listed
        spec, packed = _encode_task(path, name, kind, names, wheres, delimiter)
        specs.append(spec)
        parts.append(packed)
    labels = np.concatenate(parts, axis=1)
    if modality in ("image", "audio"):  # files that do not decode are skipped, named
        check = _check_images if modality == "image" else _check_audio
        items, kept, unreadable = check(items, list(range(len(items))))
        labels = labels[np.asarray(kept, dtype=np.int64)]
        skipped += unreadable
    return MultiTaskData(items, labels, specs, modality, str(path), skipped)


def _read_task_table(
    source: Any, label_delimiter: str | dict[str, str | None] | None
) -> tuple[TableSource, list[dict[str, str]], list[str]]:
    """Where a multi-task table came from, its rows and its columns."""
    if is_split_mapping(source):
        raise DataError(
            f"{frame_name(source)} holds the splits {', '.join(map(repr, source))}; with several "
            "tasks give the 'train' split as the data and the others as val= and test="
        )
    if is_frame(source):
        return read_frame(source, label_delimiter=label_delimiter)
    path = _existing(source)
    if path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(
            f"{path}: data with several tasks (--tasks) must be a table (.csv, .tsv, .jsonl, "
            ".parquet) with one column per task"
        )
    rows, columns = read_table(path, label_delimiter=label_delimiter)
    return path, rows, columns


def load_multitask_like(
    source: Any,
    tasks: list[TaskSpec],
    *,
    text_column: str | None = None,
    image_column: str | None = None,
) -> MultiTaskData:
    """Data to validate, test or evaluate a model on: the columns of ``tasks`` (the model's)
    read as those tasks (their kinds and delimiters), labels re-indexed into their classes."""
    if isinstance(source, MultiTaskData):
        return source.relabel(tasks)
    data = load_multitask(
        source,
        {task.name: task.kind for task in tasks},
        text_column=text_column,
        image_column=image_column,
        label_delimiter={task.name: task.label_delimiter for task in tasks},
    )
    return data.relabel(tasks)


def _encode_task(
    path: TableSource,
    name: str,
    kind: str,
    names: list[dict[str, str]],
    wheres: list[str],
    label_delimiter: str | None,
) -> tuple[TaskSpec, np.ndarray]:
    """Task ``name``'s spec and packed columns ``[n, width]`` (NaN where a row has no label)."""
    present = [i for i, labels in enumerate(names) if labels[name]]
    if not present:
        raise DataError(f"{path}: task column {name!r} holds no label in any usable row")
    values = [names[i][name] for i in present]
    delimiter = label_delimiter
    if kind == "auto" and delimiter is not None and not any(delimiter in v for v in values):
        delimiter = None  # the separator of another, multilabel task
    task, delimiter = infer_task(path, name, values, kind, delimiter)
    encoded, classes = _encode_labels(name, values, [wheres[i] for i in present], task, delimiter)
    spec = TaskSpec(name, task, tuple(classes), delimiter)
    if task != "regression" and len(classes) < 2:
        raise DataError(
            f"{path}: task {name!r} needs at least 2 classes, but its column holds only "
            f"{classes[0]!r}"
        )
    packed = np.full((len(names), spec.width), np.nan, dtype=np.float32)
    packed[present] = _packed(encoded, spec)
    return spec, packed
