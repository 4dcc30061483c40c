"""The multi-task estimator: one shared backbone, one head per task.

``MultiTaskClassifier(tasks=["sentiment", "topic"]).fit("reviews.csv")`` (or
``graft.fit("reviews.csv", tasks=[...])``) trains a head for each label column of the table at
once, on one backbone, with any strategy. Each column's task (multiclass, multilabel or
regression) is inferred from its labels or given (``"rating:regression"``); a row that lacks
some task's label still trains the others (:mod:`graft.data.multitask`). The task losses add up
with fixed weights or weights learned by homoscedastic uncertainty
(:class:`graft.training.multitask_loss.TaskWeighting`). Metrics, predictions and the run are
per task; save and load keep every head.

Everything else (backbones, strategies and their phases, the engine, the feature cache,
checkpoints and resuming, the run directory) is :class:`~graft.model.GraftClassifier`'s; what
needs one label column (``--strategy auto``, the scratch baseline, domain adaptation, class
weights and balanced sampling) is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np
import torch

from graft.backbones.registry import SCRATCH_PREFIX
from graft.config import UNCERTAINTY
from graft.data import DataSplits, random_split
from graft.data.multitask import MultiTaskData, TaskSpec, load_multitask, load_multitask_like
from graft.errors import ConfigError, DataError
from graft.evaluation import tune_thresholds
from graft.heads import MultiTaskHead
from graft.model import (
    DataLike,
    GraftClassifier,
    regression_stats,
    task_metrics,
    to_answers,
    to_probabilities,
    to_values,
    top_k,
)
from graft.training.module import Phase
from graft.training.multitask import MultiTaskModule
from graft.training.multitask_loss import TaskWeighting

log = logging.getLogger("graft")

#: The score of each kind that :meth:`MultiTaskClassifier.score` gives.
HEADLINE = {"multiclass": "accuracy", "multilabel": "micro_f1", "regression": "r2"}

MultiTaskLike = str | os.PathLike | MultiTaskData


class MultiTaskClassifier(GraftClassifier):
    """Adapts a pretrained backbone to several label columns at once, one head per column.

    Args:
        **params: any field of :class:`graft.config.FitConfig`; ``tasks`` (the label columns,
            at least two, ``COLUMN:KIND`` to set a kind) is required, ``task_weights``
            (fixed weights, or ``"uncertainty"``) optional.

    Attributes (after ``fit`` or :func:`graft.load`):
        tasks_: task (its column) -> ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        classes_: task -> class (or label) names; for regression, ``[column]``.
        thresholds_: multilabel task -> each label's decision threshold (tuned on the
            validation rows labelled for it).
        target_stats_: regression task -> the training target's ``(mean, std)``.
        task_weights_: task -> the weight of its loss at the end of training (fixed, or
            exp(-s) learned by uncertainty).
        metrics_: ``{"val": {task: metrics}, "test": {...}}``, each task's metrics on the
            rows that carry its label.
        backbone_, head_ (a :class:`~graft.heads.MultiTaskHead`), history_, summary_: as for
            :class:`GraftClassifier`.

    Example:
        >>> model = MultiTaskClassifier(tasks="sentiment,topic", task_weights="uncertainty")
        >>> model.fit("reviews.csv").predict(["Great blender."])  # doctest: +SKIP
        {'sentiment': ['positive'], 'topic': ['kitchen']}
    """

    _multitask = True

    def __init__(self, **params: Any):
        super().__init__(**params)
        config = self.config
        if not config.tasks:
            raise ConfigError(
                "MultiTaskClassifier trains several label columns: give tasks=[...] (at least two)"
            )
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
            "--sampler balanced draws the classes of one task evenly; not with --tasks": (
                config.sampler == "balanced"
            ),
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)

    # Fitting ------------------------------------------------------------------------------------

    def fit(
        self,
        data: MultiTaskLike,
        val: MultiTaskLike | None = None,
        test: MultiTaskLike | None = None,
        *,
        label_column: str | None = None,
        target: DataLike | None = None,
        target_test: DataLike | None = None,
        **options: Any,
    ) -> MultiTaskClassifier:
        """Train every task on ``data``: a table with a column per task (or
        :class:`MultiTaskData`); ``val`` and ``test`` alike. Without ``val``, a seeded random
        ``val_fraction`` of the rows validates (every task needs labelled rows on both sides).
        Other options (``out``, ``overwrite``, ``resume``, ``text_column``, ``image_column``)
        are :meth:`GraftClassifier.fit`'s."""
        if label_column is not None:
            raise ConfigError(
                "--label-column names the one label column of a single-task fit; with --tasks "
                "the task columns are the labels"
            )
        if target is not None or target_test is not None:
            raise ConfigError(
                "--target-unlabeled and --target-test adapt a single-task model; not with --tasks"
            )
        return super().fit(data, val, test, **options)

    def _resolve_splits(self, data, val, test, columns) -> DataSplits:
        if columns.get("label_column"):
            raise ConfigError("--label-column is not used with --tasks: the tasks are the labels")
        inputs = {k: columns.get(k) for k in ("text_column", "image_column")}
        train = self._training_data(data, inputs)
        self._set_task(train)
        splits = DataSplits(train)
        if val is not None:
            splits.val = load_multitask_like(val, train.tasks, **inputs)
        if test is not None:
            splits.test = load_multitask_like(test, train.tasks, **inputs)
        if splits.val is None:
            fraction, seed = self.config.val_fraction, self.config.seed
            train_idx, val_idx = random_split(train, fraction, seed)
            self.split_ = {"seed": seed, "val_fraction": fraction, "kind": "random"}
            splits = DataSplits(train.subset(train_idx), train.subset(val_idx), splits.test)
        else:
            self.split_ = None
        _check_splits(splits)
        self.target_stats_ = {
            task.name: regression_stats(splits.train.task_data(task.name))
            for task in train.tasks
            if task.kind == "regression"
        }
        return splits

    def _training_data(self, data, inputs: dict) -> MultiTaskData:
        tasks = self.config.tasks
        if not isinstance(data, MultiTaskData):
            delimiter = self.config.label_delimiter
            return load_multitask(data, tasks, **inputs, label_delimiter=delimiter)
        if data.names != list(tasks):
            raise ConfigError(
                f"tasks={list(tasks)} but the data {data.source} hold the tasks {data.names}"
            )
        return data

    def _set_task(self, train: MultiTaskData) -> None:
        """Record the tasks, their classes and kinds (inferred or given)."""
        self.task_ = "multitask"
        self.task_specs_ = list(train.tasks)
        self.classes_ = {task.name: list(task.classes) for task in train.tasks}
        self.label_delimiter_ = None
        self.thresholds_ = {
            task.name: np.full(len(task.classes), 0.5)
            for task in train.tasks
            if task.kind == "multilabel"
        }
        self.target_stats_ = {}
        log.info("tasks: %s", ", ".join(f"{t.name} ({t.kind})" for t in train.tasks))

    @property
    def tasks_(self) -> dict[str, str]:
        self._check_fitted()
        return {task.name: task.kind for task in self.task_specs_}

    @property
    def task_weights_(self) -> dict[str, float]:
        self._check_fitted()
        return self.weighting_.weights()

    def _new_head(self) -> MultiTaskHead:
        """A head per task, and the task weighting whose learned weights train with them."""
        self.weighting_ = new_weighting(self.task_specs_, self.config.task_weights)
        outputs = {task.name: task.outputs for task in self.task_specs_}
        return MultiTaskHead(self.backbone_.feature_dim, outputs)

    def _networks(self) -> dict[str, torch.nn.Module]:
        return {**super()._networks(), "weighting": self.weighting_}

    def _module(self, phase: Phase, splits: DataSplits, adapting: bool = False) -> MultiTaskModule:
        if self.backbone_.spec.startswith(SCRATCH_PREFIX):  # no pretrained statistics to keep
            phase = dataclasses.replace(phase, batchnorm_statistics=True)
        return MultiTaskModule(
            self.head_,
            phase,
            self.backbone_ if phase.train_backbone else None,
            tasks=self.task_specs_,
            weighting=self.weighting_,
            target_stats=self.target_stats_,
            label_smoothing=self.config.label_smoothing,
            weight_decay=self.config.weight_decay,
        )

    def _tune_thresholds(self, val: MultiTaskData, cache) -> None:
        """Each multilabel task's thresholds, tuned on the validation rows labelled for it."""
        multilabel = [task for task in self.task_specs_ if task.kind == "multilabel"]
        if not multilabel:
            return
        outputs = self._logits(val.items, cache)
        for task in multilabel:
            rows = torch.from_numpy(val.present(task.name))
            chances = torch.sigmoid(outputs[task.name][rows]).numpy()
            self.thresholds_[task.name] = tune_thresholds(chances, val.task_data(task.name).labels)

    def _metrics(self, data: MultiTaskData, cache=None) -> dict:
        """Each task's metrics on the rows of ``data`` labelled for it (tasks with no labelled
        row are left out)."""
        outputs = self._logits(data.items, cache)
        metrics = {}
        for task in self.task_specs_:
            present = data.present(task.name)
            if not present.any():
                continue
            metrics[task.name] = task_metrics(
                task.kind,
                outputs[task.name][torch.from_numpy(present)],
                data.task_data(task.name),
                self.thresholds_.get(task.name),
                self.target_stats_.get(task.name),
            )
        return metrics

    def _summary(self, splits: DataSplits, stats, timings: dict) -> dict:
        summary = super()._summary(splits, stats, timings)
        parts = {n: getattr(splits, n) for n in ("train", "val", "test") if getattr(splits, n)}
        summary["tasks"] = {task.name: task.kind for task in self.task_specs_}
        summary["labelled"] = {name: part.labelled_counts() for name, part in parts.items()}
        summary["task_weights"] = weighting_record(self.weighting_)
        return summary

    # Inference ----------------------------------------------------------------------------------

    def _items(self, inputs) -> list[str]:
        if isinstance(inputs, MultiTaskData):
            return inputs.items
        return super()._items(inputs)

    def task_outputs(self, inputs) -> dict[str, np.ndarray]:
        """Each task's answer scores from one pass of the backbone: probabilities ``[n,
        classes]`` (softmax; multilabel, a sigmoid per label) or values ``[n]`` (regression)."""
        self._check_fitted()
        outputs = self._logits(self._items(inputs))
        return {
            task.name: to_values(outputs[task.name], self.target_stats_[task.name])
            if task.kind == "regression"
            else to_probabilities(task.kind, outputs[task.name])
            for task in self.task_specs_
        }

    def predict_proba(self, inputs) -> dict[str, np.ndarray]:
        """Each classification task's probabilities ``[n, len(classes_[task])]``."""
        outputs = self.task_outputs(inputs)
        return {task: outputs[task] for task, kind in self.tasks_.items() if kind != "regression"}

    def predict(self, inputs) -> dict[str, list[str] | list[list[str]] | np.ndarray]:
        """Every task's answers: the most probable class of each input; multilabel, the labels
        at or above their threshold; regression, the values."""
        self._check_fitted()
        outputs = self._logits(self._items(inputs))
        return {
            task.name: to_answers(
                task.kind,
                outputs[task.name],
                list(task.classes),
                self.thresholds_.get(task.name),
                self.target_stats_.get(task.name),
            )
            for task in self.task_specs_
        }

    def predict_top_k(self, inputs, k: int = 5) -> dict[str, list[list[tuple[str, float]]]]:
        """Each classification task's ``k`` most probable ``(class, probability)`` pairs."""
        if k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {k}")
        return {
            task: top_k(chances, self.classes_[task], k)
            for task, chances in self.predict_proba(inputs).items()
        }

    def evaluate(self, data: MultiTaskLike, **columns: str | None) -> dict[str, dict]:
        """Each task's metrics (see :meth:`GraftClassifier.evaluate`) on labelled ``data``: a
        table with every task's column; a row counts for the tasks it has a label of."""
        self._check_fitted()
        if columns.get("label_column"):
            raise ConfigError("--label-column is not used with a multi-task model")
        inputs = {k: columns.get(k) for k in ("text_column", "image_column")}
        return self._metrics(load_multitask_like(data, self.task_specs_, **inputs))

    def score(self, data: MultiTaskLike, **columns: str | None) -> dict[str, float]:
        """Each task's accuracy (multiclass), micro-F1 (multilabel) or R² (regression)."""
        metrics = self.evaluate(data, **columns)
        return {
            task: metrics[task][HEADLINE[kind]]
            for task, kind in self.tasks_.items()
            if task in metrics
        }


def new_weighting(tasks: list[TaskSpec], weights: dict[str, float] | str | None) -> TaskWeighting:
    """The :class:`TaskWeighting` of ``task_weights`` (see :class:`graft.config.FitConfig`)."""
    names = [task.name for task in tasks]
    if weights == UNCERTAINTY:
        return TaskWeighting(names, uncertainty=True)
    return TaskWeighting(names, weights)


def weighting_record(weighting: TaskWeighting) -> dict:
    """How the task losses were weighted, for the summary and the run."""
    record: dict[str, Any] = {
        "mode": UNCERTAINTY if weighting.uncertainty else "fixed",
        "weights": weighting.weights(),
    }
    if weighting.uncertainty:
        values = weighting.log_variances.detach().cpu().tolist()
        record["log_variances"] = dict(zip(weighting.tasks, values, strict=True))
    return record


def _check_splits(splits: DataSplits) -> None:
    """Every task has labelled training and validation rows, and every classification task at
    least two training classes; validation and test data hold the training data's modality."""
    train = splits.train
    for name in ("val", "test"):
        part = getattr(splits, name)
        if part is None:
            continue
        if not len(part):
            raise DataError(f"the {name} data {part.source} holds no examples")
        if part.modality != train.modality:
            raise DataError(
                f"{part.source} holds {part.modality} data but the training data "
                f"{train.source} holds {train.modality}"
            )
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
