"""The multi-task estimator: one shared backbone, one head per label column.

``MultiTaskClassifier(tasks=["sentiment", "topic"]).fit("reviews.csv")`` (or
``graft.fit("reviews.csv", tasks=[...])``) trains a head for each label column of the table at
once. It is :class:`~graft.estimator.GraftEstimator` fitted with the multi-task kind of task
(:mod:`graft.tasks.classification.multitask`), which reads the task columns, weighs the task losses
and
answers per task; this class only makes ``tasks`` required and refuses what needs one label
column.
"""

from __future__ import annotations

from typing import Any

from graft.errors import ConfigError
from graft.estimator import GraftEstimator


class MultiTaskClassifier(GraftEstimator):
    """Adapts a pretrained backbone to several label columns at once, one head per column.

    Args:
        **params: any field of :class:`graft.config.FitConfig`; ``tasks`` (the label columns,
            at least two, ``COLUMN:KIND`` to set a kind) is required, ``task_weights``
            (fixed weights, or ``"uncertainty"``) optional.

    Attributes (after ``fit`` or :func:`graft.load`), besides :class:`GraftEstimator`'s:
        tasks_: task (its column) -> ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        classes_: task -> class (or label) names; for regression, ``[column]``.
        thresholds_: multilabel task -> each label's decision threshold (tuned on the
            validation rows labelled for it).
        target_stats_: regression task -> the training target's ``(mean, std)``.
        task_weights_: task -> the weight of its loss at the end of training (fixed, or
            exp(-s) learned by uncertainty).
        metrics_: ``{"val": {task: metrics}, "test": {...}}``, each task's metrics on the
            rows that carry its label.

    Example:
        >>> model = MultiTaskClassifier(tasks="sentiment,topic", task_weights="uncertainty")
        >>> model.fit("reviews.csv").predict(["Great blender."])  # doctest: +SKIP
        {'sentiment': ['positive'], 'topic': ['kitchen']}
    """

    _multitask = True

    def __init__(self, **params: Any):
        super().__init__(**params)
        if not self.config.tasks:
            raise ConfigError(
                "MultiTaskClassifier trains several label columns: give tasks=[...] (at least two)"
            )
        from graft.tasks import task_class

        task_class("multitask").check_options(self.config)

    def fit(
        self,
        data,
        val=None,
        test=None,
        *,
        label_column=None,
        target=None,
        target_test=None,
        **options: Any,
    ) -> MultiTaskClassifier:
        """Train every task on ``data``: a table with a column per task (or
        :class:`~graft.data.MultiTaskData`); ``val`` and ``test`` alike. Without ``val``, a
        seeded random ``val_fraction`` of the rows validates (every task needs labelled rows on
        both sides). Other options are :meth:`GraftEstimator.fit`'s."""
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
