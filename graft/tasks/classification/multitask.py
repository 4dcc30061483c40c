"""Several label columns at once: one head per column on the shared backbone.

A table with, say, ``text, sentiment, topic, rating`` columns trains a head for each task column
(:mod:`graft.tasks.classification.multitask_data` reads and packs them); each column is a
multiclass, multi-label or
regression task of its own (:class:`MulticlassTask`, ...), inferred or given as
``COLUMN:KIND``. A row that lacks some task's label still trains the others: each task's loss is
its mean over the rows labelled for it, and the task losses add up with fixed weights or weights
learned by homoscedastic uncertainty
(:class:`graft.tasks.classification.multitask_loss.TaskWeighting`).
Metrics, answers and the run are per task. Options that need one label column (``--strategy
auto``, the scratch baseline, domain adaptation, class weights and balanced sampling), export
and serving are refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from graft.errors import ConfigError, DataError
from graft.tasks.base import MetricsTable, Task, check_companions
from graft.tasks.capabilities import (
    HoldsNetworks,
    Refused,
    SeveralTasks,
    Summarised,
    Tuned,
    ValidatesWhole,
    tunes,
)
from graft.tasks.classification.inputs import ItemInputs
from graft.tasks.classification.multiclass import MulticlassTask
from graft.tasks.classification.multilabel import MultilabelTask
from graft.tasks.classification.regression import RegressionTask, regression_stats
from graft.tasks.classification.report import TasksReport

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.classification.multitask_data import MultiTaskData, TaskSpec

log = logging.getLogger("graft")

#: The single-label task of each kind a multi-task fit holds.
KINDS: dict[str, type] = {
    "multiclass": MulticlassTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
}
#: ``task_weights`` that learns the weights (Kendall et al. 2018) instead of fixing them.
UNCERTAINTY = "uncertainty"


class MultiTask(
    SeveralTasks,
    Tuned,
    HoldsNetworks,
    Refused,
    Summarised,
    TasksReport,
    ItemInputs,
    ValidatesWhole,
    Task,
):
    """Several tasks on one backbone (see the module docstring).

    Attributes:
        specs: each task's column, kind and classes, in the order of the packed targets.
        tasks: task name -> its single-label task (classes, thresholds, target statistics).
        task_weights: the configured weights (None, a dict, or ``"uncertainty"``).
        weighting: how the task losses add up; its learned weights train with the heads.
    """

    kind = "multitask"
    headline = "accuracy"  # each task's own: see score()

    def __init__(
        self,
        specs: list[TaskSpec],
        tasks: dict[str, Task],
        task_weights: dict[str, float] | str | None = None,
    ):
        self.specs = list(specs)
        self.tasks = dict(tasks)
        self.task_weights = task_weights
        self.weighting = new_weighting(self.specs, task_weights)

    # Labels ------------------------------------------------------------------------------------

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        refused = {
            "--strategy auto measures one label column; with --tasks choose a strategy": (
                config.strategy == "auto"
            ),
            "--baseline scratch compares one task with its control; not with --tasks": (
                config.baseline == "scratch"
            ),
            f"--adapt {config.adapt} adapts a single-task model; not with --tasks": (
                config.adapt != "none"
            ),
            "--class-weights auto weighs the classes of one task; not with --tasks": (
                config.class_weights == "auto"
            ),
            "--head-init labels starts the head of one task; not with --tasks": (
                (config.task_options or {}).get("head_init", "random") != "random"
            ),
            "--sampler balanced draws the classes of one task evenly; not with --tasks": (
                config.sampler == "balanced"
            ),
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """The table's task columns (``config.tasks``), and validation and test data read as
        the training data's tasks."""
        from graft.data import DataSplits
        from graft.tasks.classification.multitask_data import (
            MultiTaskData,
            load_multitask,
            load_multitask_like,
        )

        if columns.get("label_column"):
            raise ConfigError("--label-column is not used with --tasks: the tasks are the labels")
        inputs = {k: columns.get(k) for k in ("text_column", "image_column")}
        if isinstance(data, MultiTaskData):
            if data.names != list(config.tasks):
                raise ConfigError(
                    f"tasks={list(config.tasks)} but the data {data.source} hold the tasks "
                    f"{data.names}"
                )
            train = data
        else:
            delimiter = config.label_delimiter
            train = load_multitask(data, config.tasks, **inputs, label_delimiter=delimiter)
        splits = DataSplits(train)
        if val is not None:
            splits.val = load_multitask_like(val, train.tasks, **inputs)
        if test is not None:
            splits.test = load_multitask_like(test, train.tasks, **inputs)
        return splits

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        check_multitask_splits(splits)
        return splits

    @classmethod
    def from_training_data(cls, train: MultiTaskData, config: FitConfig) -> MultiTask:
        tasks = {}
        for spec in train.tasks:
            if spec.kind == "regression":
                stats = regression_stats(train.task_data(spec.name))
                tasks[spec.name] = RegressionTask(list(spec.classes), stats)
            else:
                tasks[spec.name] = KINDS[spec.kind](list(spec.classes), spec.label_delimiter)
        return cls(train.tasks, tasks, config.task_weights)

    def announce(self) -> str:
        return "tasks: " + ", ".join(f"{t.name} ({t.kind})" for t in self.specs)

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> MultiTaskData:
        """A table with every task's column; a row counts for the tasks it has a label of."""
        from graft.tasks.classification.multitask_data import load_multitask_like

        if columns.get("label_column"):
            raise ConfigError("--label-column is not used with a multi-task model")
        inputs = {k: columns.get(k) for k in ("text_column", "image_column")}
        return load_multitask_like(data, self.specs, **inputs)

    def relabel(self, data: Any) -> Any:
        return data

    # Training ----------------------------------------------------------------------------------

    @property
    def classes(self) -> dict[str, list[str]]:
        return {name: list(task.classes) for name, task in self.tasks.items()}

    @property
    def kinds(self) -> dict[str, str]:
        """Task name -> its kind."""
        return {name: task.kind for name, task in self.tasks.items()}

    def new_head(self, backbone, dropout: float = 0.2):
        """A head per task, and a fresh weighting of their losses (trained with them)."""
        from graft.heads import MultiTaskHead

        self.weighting = new_weighting(self.specs, self.task_weights)
        outputs = {spec.name: spec.outputs for spec in self.specs}
        return MultiTaskHead(backbone.feature_dim, outputs, dropout)

    def networks(self) -> dict:
        return {"weighting": self.weighting}

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.classification.multitask_module import MultiTaskModule

        return MultiTaskModule(
            head,
            phase,
            backbone,
            tasks=self.specs,
            subtasks=self.tasks,
            weighting=self.weighting,
            label_smoothing=options["label_smoothing"],
            weight_decay=options["weight_decay"],
        )

    # Answers -----------------------------------------------------------------------------------

    def answers(self, outputs: dict) -> dict:
        return {name: task.answers(outputs[name]) for name, task in self.tasks.items()}

    def probabilities(self, outputs: dict) -> dict[str, np.ndarray]:
        """Each classification task's probabilities (regression tasks left out)."""
        return {
            name: task.probabilities(outputs[name])
            for name, task in self.tasks.items()
            if task.kind != "regression"
        }

    def task_outputs(self, outputs: dict) -> dict[str, np.ndarray]:
        """Each task's probabilities, or values for a regression task."""
        return {
            name: task.answers(outputs[name])
            if task.kind == "regression"
            else task.probabilities(outputs[name])
            for name, task in self.tasks.items()
        }

    def prediction_records(self, outputs: dict, top_k: int) -> list[dict]:
        per_task = {
            name: task.prediction_records(outputs[name], top_k) for name, task in self.tasks.items()
        }
        count = len(next(iter(per_task.values())))
        return [
            {"predictions": {name: _answer(records[i]) for name, records in per_task.items()}}
            for i in range(count)
        ]

    def refusal(self, command: str) -> str:
        what = {"export": "graft export writes", "serve": "graft serve answers for"}[command]
        return (
            f"{what} single-task models; this one has the tasks {', '.join(self.tasks)} "
            "(predict with it through graft predict or graft.load)"
        )

    @property
    def tunes(self) -> bool:
        return any(tunes(task) for task in self.tasks.values())

    def tune(self, outputs: dict, data: MultiTaskData) -> None:
        """Each multi-label task's thresholds, tuned on the validation rows labelled for it."""
        import torch

        for name, task in self.tasks.items():
            if tunes(task):
                rows = torch.from_numpy(data.present(name))
                task.tune(outputs[name][rows], data.task_data(name))

    # Metrics -----------------------------------------------------------------------------------

    def metrics(self, outputs: dict, data: MultiTaskData) -> dict:
        """Each task's metrics on the rows labelled for it (tasks with none are left out)."""
        import torch

        metrics = {}
        for name, task in self.tasks.items():
            present = data.present(name)
            if present.any():
                rows = torch.from_numpy(present)
                metrics[name] = task.metrics(outputs[name][rows], data.task_data(name))
        return metrics

    def score(self, metrics: dict) -> dict[str, float]:
        """Each task's headline figure."""
        return {
            name: metrics[name][task.headline]
            for name, task in self.tasks.items()
            if name in metrics
        }

    def describe(self) -> str:
        return f"{len(self.tasks)} tasks"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: dict, title: str) -> list[MetricsTable]:
        return []  # the command line prints each task's tables (metric_parts)

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        tasks = []
        for spec in self.specs:
            entry = spec.to_dict()
            entry.update(
                {
                    k: v
                    for k, v in self.tasks[spec.name].record().items()
                    if k in ("thresholds", "target_mean", "target_std")
                }
            )
            tasks.append(entry)
        return {"kind": self.kind, "tasks": tasks, "weighting": weighting_record(self.weighting)}

    def labels_record(self) -> dict[str, list[str]]:
        return self.classes

    def summary(self, splits: DataSplits) -> dict:
        parts = splits.parts()
        return {
            "tasks": self.kinds,
            "labelled": {name: part.labelled_counts() for name, part in parts.items()},
            "task_weights": weighting_record(self.weighting),
        }

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> MultiTask:
        from graft.tasks.classification.multitask_data import TaskSpec

        specs = [TaskSpec.from_dict(task) for task in record["tasks"]]
        tasks = {}
        for entry, spec in zip(record["tasks"], specs, strict=True):
            kind = KINDS[spec.kind]
            tasks[spec.name] = kind.from_record(entry, list(spec.classes))
        weighting = record.get("weighting") or {}
        mode = UNCERTAINTY if weighting.get("mode") == UNCERTAINTY else weighting.get("weights")
        return cls(specs, tasks, mode)


def _answer(record: dict) -> Any:
    """One task's answer inside a multi-task ``graft predict --json`` line."""
    return record["prediction"] if "prediction" in record else record["predictions"]


def new_weighting(specs: list[TaskSpec], weights: dict[str, float] | str | None):
    """The :class:`TaskWeighting` of ``task_weights`` (see :class:`graft.config.FitConfig`)."""
    from graft.tasks.classification.multitask_loss import TaskWeighting

    names = [spec.name for spec in specs]
    if weights == UNCERTAINTY:
        return TaskWeighting(names, uncertainty=True)
    return TaskWeighting(names, weights)


def weighting_record(weighting) -> dict:
    """How the task losses were weighted, for the summary and the run."""
    record: dict[str, Any] = {
        "mode": UNCERTAINTY if weighting.uncertainty else "fixed",
        "weights": weighting.weights(),
    }
    if weighting.uncertainty:
        values = weighting.log_variances.detach().cpu().tolist()
        record["log_variances"] = dict(zip(weighting.tasks, values, strict=True))
    return record


def check_multitask_splits(splits: DataSplits) -> None:
    """Every task has labelled training and validation rows, and every classification task at
    least two training classes; validation and test data hold the training data's modality."""
    train = splits.train
    check_companions(splits)
    for task in train.tasks:
        for name, part in (("training", train), ("validation", splits.val)):
            if not part.present(task.name).any():
                raise DataError(
                    f"{part.source}: the {name} rows hold no label of task {task.name!r} "
                    "(label more rows, or give validation data with --val)"
                )
        if task.kind == "multiclass":
            present = [c for c, n in train.task_data(task.name).class_counts().items() if n]
            if len(present) < 2:
                raise DataError(
                    f"{train.source}: task {task.name!r} has training labels of one class "
                    f"only ({present[0]!r}); it needs at least 2"
                )
