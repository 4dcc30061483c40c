"""Kinds of task as plug-ins: each a :class:`~graft.tasks.base.Task` in a module of its own.

:data:`TASK_CLASSES` names every kind and where its class lives; classes are imported when first
asked for (:func:`task_class`), so reading the names costs nothing. :func:`read_task_data` reads
a fit's data and says which kind it holds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError, RunError

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.base import Task

#: Kind -> ``module:class`` of its task.
TASK_CLASSES: dict[str, str] = {
    "multiclass": "graft.tasks.classification.multiclass:MulticlassTask",
    "multilabel": "graft.tasks.classification.multilabel:MultilabelTask",
    "regression": "graft.tasks.classification.regression:RegressionTask",
    "multitask": "graft.tasks.classification.multitask:MultiTask",
    "tagging": "graft.tasks.tagging.task:TaggingTask",
    "detection": "graft.tasks.detection.task:DetectionTask",
    "instance-segmentation": "graft.tasks.detection.task:InstanceSegmentationTask",
    "segmentation": "graft.tasks.segmentation.task:SegmentationTask",
}
#: The kinds of one label column (or class folders), whose kind the labels tell.
LABEL_KINDS = ("multiclass", "multilabel", "regression")
#: The kinds ``--task`` may name (several label columns are asked for with ``--tasks``).
CHOOSABLE = tuple(kind for kind in TASK_CLASSES if kind != "multitask")


def task_class(kind: str) -> type[Task]:
    """The task class of ``kind`` (RunError for a kind this graft does not know)."""
    try:
        module, _, name = TASK_CLASSES[kind].partition(":")
    except KeyError:
        raise RunError(
            f"unknown task kind {kind!r}: this graft knows {', '.join(TASK_CLASSES)}"
        ) from None
    return getattr(importlib.import_module(module), name)


def claiming_kind(data: Any) -> type[Task] | None:
    """The kind of task (other than a label column's) that holds ``data`` by its content, or
    None (a label column, or class folders)."""
    for name in CHOOSABLE:
        if name not in LABEL_KINDS and task_class(name).claims(data):
            return task_class(name)
    return None


def read_task_data(
    config: FitConfig, data: Any, val: Any, test: Any, columns: dict[str, str | None]
) -> tuple[type[Task], DataSplits]:
    """The kind of task of a fit and its data: several label columns (``config.tasks``) are a
    multi-task fit; otherwise one label column, whose kind ``config.task`` gives or the labels
    tell (:func:`graft.data.sources.infer_task`)."""
    if config.tasks:
        claimed = [n for n in CHOOSABLE if n not in LABEL_KINDS and task_class(n).claims(data)]
        if claimed:
            raise ConfigError(
                f"--tasks trains several label columns of one table at once; {data} holds "
                f"{claimed[0]} data, a task of its own that cannot be mixed with them: leave "
                "out --tasks"
            )
        kind = task_class("multitask")
        return kind, kind.read_splits(data, val, test, columns, config)
    if config.task not in ("auto", *LABEL_KINDS):
        kind = task_class(config.task)
        return kind, kind.read_splits(data, val, test, columns, config)
    if config.task == "auto":
        for name in CHOOSABLE:
            if name not in LABEL_KINDS and task_class(name).claims(data):
                kind = task_class(name)
                return kind, kind.read_splits(data, val, test, columns, config)
    from graft.tasks.classification.label_column import read_label_splits

    splits = read_label_splits(data, val, test, columns, config)
    return task_class(splits.train.task), splits
