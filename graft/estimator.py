"""The estimator: ``GraftEstimator(...).fit(data)``, then ``predict``, ``evaluate``, ``save``.

``fit`` reads as the pipeline it is: read the data and learn the task's label space
(:mod:`graft.tasks`), build the backbone, choose the strategy and learning rate, plan the phases
(:mod:`graft.strategies`), train them (:class:`graft.training.runner.PhaseRunner`, handed the
domain adaptation of :mod:`graft.adaptation.component` when there is target data), evaluate,
and write the run directory (:mod:`graft.runs`).

It follows scikit-learn's conventions: hyperparameters go to the constructor and are checked
there, ``fit`` never changes them (what ``auto`` chose is in ``model_``, ``strategy_`` and
``lr_``), fitted state lives in attributes ending in ``_``, ``get_params``/``set_params`` read
and change the hyperparameters, and the same parameters and seed give the same model.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from graft.adaptation.component import DomainAdaptation
from graft.backbones import Backbone
from graft.config import DEFAULT_MODELS, FitConfig
from graft.data import DataSplits
from graft.errors import ConfigError
from graft.features import FeatureCache
from graft.fewshot.semi_supervised import SemiSupervised
from graft.fitting import results
from graft.fitting.inputs import DataLike, FitData, columns_of, read_splits
from graft.fitting.training import check_run_options, range_test, train_phases
from graft.inference import Predictor
from graft.runs.directory import check_run_dir, finish_run, run_lock, start_run
from graft.selection.advisor import advise_strategy
from graft.strategies import STRATEGIES
from graft.tasks.base import Task
from graft.tasks.capabilities import build_backbone, start_head
from graft.training.budget import TimeBudget
from graft.training.distributed import is_global_zero
from graft.training.lr_finder import LRFinding
from graft.training.sampling import loader_workers

log = logging.getLogger("graft")

__all__ = ["DataLike", "FitData", "GraftClassifier", "GraftEstimator"]


class GraftEstimator(Predictor):
    """Adapts a pretrained backbone to a labelled dataset of any kind of task with a new head.

    The kind of task is the data's (``task_``, recognised unless ``task`` is given;
    :mod:`graft.tasks`): the head classifies (one class per input, or any number of labels per
    input), regresses a number, does several of these at once (``tasks=[...]``), tags words,
    detects or segments objects, or whatever kind a plug-in adds. ``GraftClassifier`` is the
    same class under the name it had while graft fitted only classes.

    Args:
        **params: any field of :class:`graft.config.FitConfig` (``model``, ``epochs``, ...) or
            option of the data's kind (``detector``, ...: :attr:`FitConfig.task_options`).

    Attributes (after ``fit`` or :func:`graft.load`):
        task_: the kind of task (``"multiclass"``, ``"multilabel"``, ``"regression"``,
            ``"multitask"``, ``"tagging"``, ``"detection"``, ...).
        fitted_task_: the task (:class:`graft.tasks.base.Task`) with its label space: classes,
            a multi-label model's thresholds, a regression target's mean and std.
        classes_: class (or label) names, in the order of the probability columns; for
            regression, the target's name; for several tasks, per task.
        model_, strategy_, lr_: the backbone, strategy and head learning rate the fit used
            (what ``None`` or ``auto`` resolved to); config_: every setting as the fit used it.
        backbone_, head_: the trained network.
        metrics_: validation (and test) metrics, and with ``baseline="scratch"`` the
            ``"transfer"`` gain over the from-scratch control; history_: per-epoch metrics;
        summary_: data counts, skipped inputs, feature-cache hits, timings, and with
            ``strategy="auto"`` the ``"advice"``: the strategy chosen, its measurements and
            reason (also ``advice_``).

    With target data (``fit(..., target=...)``), ``metrics_["adaptation"]`` holds the domain
    gap before and after training and the label-free scores of the target predictions, and
    ``metrics_["target_test"]`` the metrics on labelled target data when given.
    """

    #: Whether this estimator trains several tasks (:class:`graft.multitask.MultiTaskClassifier`).
    _multitask = False

    def __init__(self, **params: Any):
        self.config = _checked(params, self._multitask)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters, as given (``fit`` never changes them)."""
        return self.config.to_dict()

    def set_params(self, **params: Any) -> GraftEstimator:
        """Change hyperparameters (checked as the constructor checks them); returns self."""
        self.config = _checked({**self.config.to_dict(), **params}, self._multitask)
        return self

    # Fitting ------------------------------------------------------------------------------------

    def fit(
        self,
        data: DataLike,
        val: DataLike | None = None,
        test: DataLike | None = None,
        *,
        out: str | os.PathLike | None = None,
        overwrite: bool = False,
        resume: bool = False,
        text_column: str | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
        target: DataLike | None = None,
        target_test: DataLike | None = None,
        audio_column: str | None = None,
        unlabeled: DataLike | None = None,
    ) -> GraftEstimator:
        """Train on ``data`` (a folder, a table, a DataFrame, a ``datasets.Dataset``, or a
        :class:`LabelledData`).

        Validation data comes from ``val``, a ``val/`` folder beside ``train/``, or a seeded
        split of ``data``. With ``out``, the run directory is written there and checkpointed
        every epoch; ``resume=True`` continues an interrupted run in ``out`` (see
        :func:`graft.resume`). ``target``: unlabelled data of the domain the model must serve,
        which the ``adapt`` method aligns the features with (with ``adapt="none"`` it is only
        measured); ``target_test``: labelled target data, evaluated at the end.
        ``unlabeled``: unlabelled data of the same kind as ``data`` (labels, if any, ignored),
        which self-training learns from; the semi-supervised model is kept only if it scores no
        lower than the labelled-only one (:mod:`graft.fewshot.semi_supervised`). With few
        labels and no validation data, every example trains and k-fold cross-validation gives
        the estimate (:mod:`graft.fewshot.few_labels`). A run directory that another process is
        writing is refused (:func:`run_lock`).
        """
        columns = dict(
            text_column=text_column,
            image_column=image_column,
            label_column=label_column,
            audio_column=audio_column,
        )
        inputs = FitData(data, val, test, columns, target, target_test, unlabeled)
        # Under a DDP launcher every process runs this fit; the others pick up what the first
        # one finished (resume) and never write the run directory.
        resume = resume or not is_global_zero()
        if out is not None and not resume:
            check_run_dir(out, overwrite)
        with run_lock(out if is_global_zero() else None, create=not resume):
            return self._fit(inputs, out, overwrite, resume)

    def _fit(self, inputs: FitData, out, overwrite: bool, resume: bool) -> GraftEstimator:
        started, timings = time.perf_counter(), {}
        for name in [n for n in self.__dict__ if n.endswith("_")]:  # a refit starts afresh
            delattr(self, name)
        self.time_budget_ = TimeBudget.of(self.config.time_limit)  # the clock starts here
        splits, task, config = self._prepare(inputs)
        check_run_options(config, out, len(splits.train))
        backbone = build_backbone(type(task), config, splits.train)
        adaptation = DomainAdaptation.for_fit(
            config, inputs.target, inputs.target_test, splits, inputs.columns
        )
        semi = SemiSupervised.for_fit(config, inputs.unlabeled, splits, inputs.columns, task)
        run_dir = None
        if out is not None:
            self.arguments_ = inputs.arguments()
            run_dir = start_run(out, overwrite, resume, self.config.to_dict(), self.arguments_)
        cache = FeatureCache(Path(config.cache_dir) / "features" if config.cache_dir else None)
        config = self._choose_strategy(config, splits, backbone, cache, timings)
        if adaptation is not None:
            adaptation.measure_before(splits, backbone, cache)
        self._graft(config, task, backbone)
        config = self._choose_lr(config, splits, cache, timings)
        self.config_, self.model_, self.strategy_, self.lr_ = (
            config,
            config.model,
            config.strategy,
            config.lr,
        )
        train_phases(self, config, splits, cache, timings, (run_dir, resume, adaptation), semi)
        estimate = results.cross_validated(self, splits, inputs, semi, timings)
        results.evaluate_splits(self, config, splits, cache, timings, adaptation)
        if estimate is not None:
            self.metrics_["cross_validation"] = estimate
        if semi is not None:
            self.metrics_["semi_supervised"] = semi.record
        timings["total"] = time.perf_counter() - started
        if config.baseline == "scratch":
            self.metrics_["transfer"] = results.scratch_baseline(self, splits, timings)
        self.summary_ = results.fit_summary(self, splits, cache, timings)
        self.splits_ = splits
        if run_dir is not None and is_global_zero():
            self.save(run_dir, overwrite=True)
            finish_run(run_dir)
            results.write_report(run_dir)
        return self

    def _read_data(self, inputs: FitData) -> tuple[DataSplits, Task]:
        """The data splits (validation split off when not given) and the fitted task
        (:func:`graft.fitting.inputs.read_splits`)."""
        return read_splits(self, inputs)

    def _prepare(self, inputs: FitData) -> tuple[DataSplits, Task, FitConfig]:
        """The splits, the task and the configuration of a fit: the hyperparameters with the
        kind's options, the modality's model when none was given, and the defaults of the
        kind (:meth:`Task.defaults`) and of graft for the options left at None."""
        splits, task = self._read_data(inputs)
        config = self.config.for_kind(task.kind).resolved(
            model=self.config.model or DEFAULT_MODELS[splits.train.modality]
        )
        return splits, task, task.defaults(config).with_defaults()

    def _choose_strategy(self, config, splits, backbone, cache, timings) -> FitConfig:
        """The strategy: as given, or for ``auto`` the advisor's choice (``advice_``)."""
        if config.strategy != "auto":
            return config
        self.advice_ = advise_strategy(
            splits.train,
            splits.val,
            backbone,
            cache,
            config.batch_size,
            loader_workers(config.num_workers),
            adapting=config.adapt != "none",
        )
        timings["advice"] = self.advice_.measurements.feature_seconds
        log.info("--strategy auto chose %s: %s", self.advice_.strategy, self.advice_.reason)
        return config.resolved(strategy=self.advice_.strategy)

    def _graft(self, config: FitConfig, task: Task, backbone: Backbone) -> None:
        """The new head on ``backbone`` (seeded; started from what the backbone knows when
        the task can and ``config`` asks: ``head_started_``), and the strategy's change of
        the backbone (``lora``'s adapters, seeded alike)."""
        torch.manual_seed(config.seed)
        self.fitted_task_, self.backbone_ = task, backbone
        self.head_ = task.new_head(backbone)
        self.head_started_ = start_head(task, self.head_, backbone, config)
        STRATEGIES[config.strategy]().prepare(config, backbone)

    def _choose_lr(self, config, splits, cache, timings) -> FitConfig:
        """The head's learning rate: as given, or for ``auto`` the range test's suggestion."""
        if config.lr != "auto":
            return config
        self.lr_finding_ = range_test(self, config, splits, cache, timings)
        log.info("learning rate %.3g, from the range test (--lr auto)", self.lr_finding_.suggestion)
        return config.resolved(lr=self.lr_finding_.suggestion)

    def find_lr(self, data: DataLike, val: DataLike | None = None, **columns) -> LRFinding:
        """Run the learning-rate range test for ``data`` without fitting; the suggestion is
        what ``lr="auto"`` would pick (``.plot(path)`` draws the curve)."""
        splits, task, config = self._prepare(FitData(data, val, None, columns_of(columns)))
        backbone = build_backbone(type(task), config, splits.train)
        torch.manual_seed(config.seed)
        self.fitted_task_, self.backbone_ = task, backbone
        self.head_ = task.new_head(backbone)
        self.model_ = config.model
        cache = FeatureCache(Path(config.cache_dir) / "features" if config.cache_dir else None)
        return range_test(self, config, splits, cache, {})

    # Evaluation ---------------------------------------------------------------------------------

    def evaluate(self, data: DataLike, **columns: str | None) -> dict:
        """The task's metrics on labelled ``data``: multiclass, accuracy, macro-F1, per-class
        precision/recall/F1 and the confusion matrix; multilabel, micro- and macro-F1, subset
        accuracy and per-label precision/recall/F1; regression, MSE, RMSE, MAE and R²; several
        tasks, each task's on the rows labelled for it."""
        self._check_fitted()
        data = self.fitted_task_.read_labelled(data, columns_of(columns))
        return self.fitted_task_.metrics(self._outputs(data), data)

    def score(self, data: DataLike, **columns: str | None):
        """Accuracy (multiclass), micro-F1 (multilabel) or R² (regression) on ``data`` (for
        several tasks, each task's)."""
        return self.fitted_task_.score(self.evaluate(data, **columns))

    # Persistence --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the model (and, after a fit, its metrics and history) to a run directory."""
        from graft.runs.persistence import save_model

        self._check_fitted()
        return save_model(self, Path(path), overwrite)


def _checked(params: dict[str, Any], multitask: bool) -> FitConfig:
    """The configuration of ``params`` (:meth:`FitConfig.from_params`), checked; ``tasks``
    only for an estimator of several tasks."""
    config = FitConfig.from_params(params).validate()
    if config.tasks and not multitask:
        raise ConfigError(
            "tasks=... trains several tasks at once: use graft.fit(data, tasks=...) or "
            "graft.MultiTaskClassifier"
        )
    return config


#: The name graft's estimator had while it fitted only classes (kept: the same class).
GraftClassifier = GraftEstimator
