"""Kinds of task as plug-ins: each a :class:`~graft.tasks.base.Task` in a package of its own.

The registry finds a kind by name: graft's own kinds (:data:`BUILT_IN`, which ``pyproject.toml``
also declares) and those that installed packages add through the entry-point group
``graft.tasks`` (:data:`ENTRY_POINT_GROUP`; an entry point's name is the kind, its value the
``module:Class`` of its task)::

    [project.entry-points."graft.tasks"]
    parity = "graft_parity.task:ParityTask"

Reading the names (:func:`kinds`, :data:`CHOOSABLE`) imports no kind; a kind's class is imported
when first asked for (:func:`task_class`). A kind whose package cannot be imported (deleted, or
its distribution removed) is *not installed*: asking for it raises :class:`KindNotInstalledError`
in one line, and recognising data by its content (:func:`claiming_kind`) passes it by.
:func:`read_task_data` reads a fit's data and says which kind it holds.

Attributes read lazily (module ``__getattr__``): ``TASK_CLASSES`` (:func:`kinds`),
``CHOOSABLE`` (the kinds ``--task`` may name: all but ``multitask``, which ``--tasks`` asks for)
and ``LABEL_KINDS`` (the kinds of one label column, whose kind the labels tell).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError, DataError, RunError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.base import Task

#: The entry-point group through which an installed package adds kinds of task.
ENTRY_POINT_GROUP = "graft.tasks"
#: graft's own kinds -> ``module:class`` of their task, in the order ``--task auto`` tries them
#: (``pyproject.toml`` declares them as entry points too; this table serves a checkout whose
#: installed metadata is older than its code).
BUILT_IN: dict[str, str] = {
    "multiclass": "graft.tasks.classification.multiclass:MulticlassTask",
    "multilabel": "graft.tasks.classification.multilabel:MultilabelTask",
    "regression": "graft.tasks.classification.regression:RegressionTask",
    "multitask": "graft.tasks.classification.multitask:MultiTask",
    "tagging": "graft.tasks.tagging.task:TaggingTask",
    "question-answering": "graft.tasks.question_answering.task:QuestionAnsweringTask",
    "detection": "graft.tasks.detection.task:DetectionTask",
    "instance-segmentation": "graft.tasks.detection.task:InstanceSegmentationTask",
    "segmentation": "graft.tasks.segmentation.task:SegmentationTask",
    "similarity": "graft.tasks.similarity.task:SimilarityTask",
    "recommendation": "graft.tasks.similarity.recommend_task:RecommendationTask",
    "transcription": "graft.tasks.transcription.task:TranscriptionTask",
}
#: The kinds of one label column (or class folders), whose kind the labels tell.
_LABEL_COLUMN = ("multiclass", "multilabel", "regression")
#: Where the label-column kinds read their data (a fit whose kind the labels tell).
_LABEL_READER = "graft.tasks.classification.label_column:read_label_splits"


class KindNotInstalledError(ConfigError):
    """A kind of task the registry names whose package cannot be imported."""


@functools.cache
def kinds() -> dict[str, str]:
    """Every kind of task -> the ``module:class`` of its task: graft's own first, then those
    of the ``graft.tasks`` entry points (a name already taken keeps its first meaning).
    Read once; ``kinds.cache_clear()`` reads the entry points again."""
    from importlib.metadata import entry_points

    table = dict(BUILT_IN)
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        table.setdefault(point.name, point.value)
    return table


def __getattr__(name: str) -> Any:
    if name == "TASK_CLASSES":
        return dict(kinds())
    if name == "CHOOSABLE":
        return tuple(kind for kind in kinds() if kind != "multitask")
    if name == "LABEL_KINDS":
        return tuple(kind for kind in _LABEL_COLUMN if kind in kinds())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _load(kind: str, target: str) -> Any:
    """The object ``module:name`` of ``kind``; KindNotInstalledError when its module cannot
    be imported because the kind's own package, or a package outside graft that it needs, is
    missing (a missing module of graft's engine is a bug, left to show)."""
    module, _, name = target.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        own = module == missing or module.startswith(missing + ".")
        if not missing or (missing.partition(".")[0] == "graft" and not own):
            raise
        raise KindNotInstalledError(
            f"the {kind} kind of task is not installed: {module} cannot be imported ({error})"
        ) from None
    try:
        return getattr(loaded, name)
    except AttributeError:
        raise ConfigError(
            f"the {kind} kind of task names {target}, but {module} has no {name}"
        ) from None


def task_class(kind: str) -> type[Task]:
    """The task class of ``kind`` (RunError for a kind this graft does not know,
    KindNotInstalledError for one whose package cannot be imported)."""
    try:
        target = kinds()[kind]
    except KeyError:
        raise RunError(
            f"unknown task kind {kind!r}: this graft knows {', '.join(kinds())}"
        ) from None
    return _load(kind, target)


def _content_kinds() -> Iterator[tuple[str, type[Task]]]:
    """``(name, class)`` of each installed kind that tells its data by content (every kind
    but the label-column ones and multitask), in registry order."""
    for name in kinds():
        if name in (*_LABEL_COLUMN, "multitask"):
            continue
        try:
            yield name, task_class(name)
        except KindNotInstalledError:
            continue


def claiming_kind(data: Any) -> type[Task] | None:
    """The kind of task (other than a label column's) that holds ``data`` by its content, or
    None (a label column, or class folders)."""
    from graft.tasks.capabilities import claims

    for _, kind in _content_kinds():
        if claims(kind, data):
            return kind
    return None


def read_task_data(
    config: FitConfig, data: Any, val: Any, test: Any, columns: dict[str, str | None]
) -> tuple[type[Task], DataSplits]:
    """The kind of task of a fit and its data: several label columns (``config.tasks``) are a
    multi-task fit; otherwise one label column, whose kind ``config.task`` gives or the labels
    tell (:func:`graft.data.sources.infer_task`)."""
    from graft.tasks.capabilities import claims

    if config.tasks:
        claimed = [name for name, kind in _content_kinds() if claims(kind, data)]
        if claimed:
            raise ConfigError(
                f"--tasks trains several label columns of one table at once; {data} holds "
                f"{claimed[0]} data, a task of its own that cannot be mixed with them: leave "
                "out --tasks"
            )
        kind = task_class("multitask")
        return kind, kind.read_splits(data, val, test, columns, config)
    if config.task not in ("auto", *_LABEL_COLUMN):
        kind = task_class(config.task)
        return kind, kind.read_splits(data, val, test, columns, config)
    if config.task == "auto":
        for _, kind in _content_kinds():
            if claims(kind, data):
                return kind, kind.read_splits(data, val, test, columns, config)
    read_label_splits = _load(config.task if config.task != "auto" else "multiclass", _LABEL_READER)
    try:
        splits = read_label_splits(data, val, test, columns, config)
    except DataError as error:
        unread = _unread(data, error, config.task == "auto")
        if unread is error:
            raise
        raise unread from None
    return task_class(splits.train.task), splits


def _unread(data: Any, error: DataError, auto: bool) -> DataError:
    """What a fit says of data that the label-column reader refused with ``error``: with
    ``--task auto``, the line that breaks a kind's format when the data is nearly that kind's
    (:meth:`~graft.tasks.capabilities.ClaimsData.near_miss`); for data of no format, the
    formats of every installed kind (:attr:`~graft.tasks.base.Task.formats`); else ``error``
    itself."""
    from graft.data.sources import UnknownFormatError
    from graft.tasks.capabilities import near_miss

    for _, kind in _content_kinds() if auto else ():
        reason = near_miss(kind, data)
        if reason:
            return DataError(reason)
    if not isinstance(error, UnknownFormatError):
        return error
    formats: dict[str, None] = {}
    for name in kinds():
        try:
            formats[task_class(name).formats] = None
        except KindNotInstalledError:
            continue
    what = "no class folders, nor data" if error.path.is_dir() else "not data"
    listed = "; ".join(found for found in formats if found)
    return DataError(f"{error.path}: {what} of any kind graft reads: {listed}")
