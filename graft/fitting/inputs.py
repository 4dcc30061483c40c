"""What a fit reads: the training data and its companions (:class:`FitData`), read into the
splits and the task of the data's kind (:func:`read_splits`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.data import DataSplits
from graft.fewshot.few_labels import FewLabels
from graft.tasks import read_task_data
from graft.tasks.base import Task
from graft.tasks.capabilities import announce

log = logging.getLogger("graft")

DataLike = Any  # a path (folder, table), a LabelledData, a DataFrame, a datasets.Dataset

#: The column arguments of ``fit``, ``evaluate`` and ``find_lr``.
COLUMNS = ("text_column", "image_column", "label_column", "audio_column")


@dataclass
class FitData:
    """What a fit reads: the training data and its companions, as the caller gave them."""

    data: DataLike
    val: DataLike | None = None
    test: DataLike | None = None
    columns: dict[str, str | None] | None = None
    target: DataLike | None = None
    target_test: DataLike | None = None
    unlabeled: DataLike | None = None

    def arguments(self) -> dict | None:
        """The data arguments as the run records them for ``--resume`` (None when the data
        are in-memory objects that a later process could not read back)."""
        values = {
            "data": self.data,
            "val": self.val,
            "test": self.test,
            "target": self.target,
            "target_test": self.target_test,
            "unlabeled": self.unlabeled,
        }
        if any(v is not None and not isinstance(v, str | os.PathLike) for v in values.values()):
            return None
        paths = {
            k: None if v is None else str(Path(v).expanduser().resolve()) for k, v in values.items()
        }
        return {**paths, "columns": {k: v for k, v in self.columns.items() if v is not None}}


def columns_of(columns: dict) -> dict[str, str | None]:
    """Every column argument, None where not given."""
    return {name: columns.get(name) for name in COLUMNS}


def read_splits(model: Any, inputs: FitData) -> tuple[DataSplits, Task]:
    """The data splits (validation split off when not given) and the fitted task of a fit
    with ``model``'s hyperparameters (as given); sets ``model.split_`` (how validation data
    was split off, or None) and, when none was given, ``model.few_labels_`` (the few-labels
    regime, or None)."""
    config = model.config
    task_class, splits = read_task_data(
        config, inputs.data, inputs.val, inputs.test, inputs.columns
    )
    task_class.check_options(config)
    adapting = inputs.target is not None
    if splits.val is None:
        model.few_labels_ = FewLabels.for_fit(config, task_class, splits.train, adapting)
    if splits.val is None and model.few_labels_ is not None:
        model.split_ = model.few_labels_.split_record()
        log.info(model.few_labels_.reason())
    elif splits.val is None:
        train = splits.train
        train_idx, val_idx = task_class.split(train, config.val_fraction, config.seed)
        model.split_ = {
            "seed": config.seed,
            "val_fraction": config.val_fraction,
            "kind": task_class.split_kind,
        }
        splits = DataSplits(train.subset(train_idx), train.subset(val_idx), splits.test)
    else:
        model.split_ = None
    splits = task_class.check_splits(splits)
    task = task_class.from_training_data(splits.train, config)
    log.info(announce(task))
    return splits, task
