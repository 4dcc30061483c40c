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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graft.adaptation.component import DomainAdaptation
from graft.backbones import Backbone
from graft.backbones.registry import SCRATCH_PREFIX
from graft.config import DEFAULT_MODELS, FitConfig
from graft.data import DataSplits
from graft.data.transforms import mixup_for
from graft.errors import ConfigError
from graft.features import FeatureCache
from graft.fewshot.few_labels import LABELLED_ONLY, FewLabels, kept_estimate
from graft.fewshot.semi_supervised import SemiSupervised
from graft.inference import Predictor
from graft.runs.directory import check_run_dir, finish_run, run_lock, start_run
from graft.selection.advisor import advise_strategy
from graft.selection.baseline import fit_scratch_baseline
from graft.strategies import STRATEGIES
from graft.tasks import read_task_data
from graft.tasks.base import Task
from graft.tasks.capabilities import CachesFeatures, SingleLabel, tunes
from graft.training.distributed import EngineOptions, is_global_zero
from graft.training.loaders import FitLoaders
from graft.training.lr_finder import FALLBACK_LR, LRFinding, find_learning_rate
from graft.training.phase import Phase
from graft.training.runner import ModuleFactory, PhaseRunner
from graft.training.sampling import loader_workers

log = logging.getLogger("graft")

DataLike = Any  # a path (folder, table), a LabelledData, a DataFrame, a datasets.Dataset


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
        splits, task = self._read_data(inputs)
        config = self.config.for_kind(task.kind).resolved(
            model=self.config.model or DEFAULT_MODELS[splits.train.modality]
        )
        config = task.defaults(config)
        _check_run_options(config, out, len(splits.train))
        backbone = type(task).build_backbone(config, splits.train)
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
        self._train(config, splits, cache, timings, run_dir, resume, adaptation, semi)
        estimate = self._estimate(splits, inputs, semi, timings)
        self._evaluate(config, splits, cache, timings, adaptation)
        if estimate is not None:
            self.metrics_["cross_validation"] = estimate
        if semi is not None:
            self.metrics_["semi_supervised"] = semi.record
        timings["total"] = time.perf_counter() - started
        if config.baseline == "scratch":
            self.metrics_["transfer"] = self._scratch_baseline(splits, timings)
        self.summary_ = self._summary(splits, cache, timings)
        self.splits_ = splits
        if run_dir is not None and is_global_zero():
            self.save(run_dir, overwrite=True)
            finish_run(run_dir)
            _write_report(run_dir)
        return self

    def _read_data(self, inputs: FitData) -> tuple[DataSplits, Task]:
        """The data splits (validation split off when not given) and the fitted task."""
        config = self.config
        task_class, splits = read_task_data(
            config, inputs.data, inputs.val, inputs.test, inputs.columns
        )
        task_class.check_options(config)
        adapting = inputs.target is not None
        if splits.val is None:
            self.few_labels_ = FewLabels.for_fit(config, task_class, splits.train, adapting)
        if splits.val is None and self.few_labels_ is not None:
            self.split_ = self.few_labels_.split_record()
            log.info(self.few_labels_.reason())
        elif splits.val is None:
            train = splits.train
            train_idx, val_idx = task_class.split(train, config.val_fraction, config.seed)
            self.split_ = {
                "seed": config.seed,
                "val_fraction": config.val_fraction,
                "kind": task_class.split_kind,
            }
            splits = DataSplits(train.subset(train_idx), train.subset(val_idx), splits.test)
        else:
            self.split_ = None
        splits = task_class.check_splits(splits)
        task = task_class.from_training_data(splits.train, config)
        log.info(task.announce())
        return splits, task

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
        """The new head on ``backbone`` (seeded), and the strategy's change of the backbone
        (``lora``'s adapters, seeded alike)."""
        torch.manual_seed(config.seed)
        self.fitted_task_, self.backbone_ = task, backbone
        self.head_ = task.new_head(backbone)
        STRATEGIES[config.strategy]().prepare(config, backbone)

    def _choose_lr(self, config, splits, cache, timings) -> FitConfig:
        """The head's learning rate: as given, or for ``auto`` the range test's suggestion."""
        if config.lr != "auto":
            return config
        self.lr_finding_ = self._range_test(config, splits, cache, timings)
        log.info("learning rate %.3g, from the range test (--lr auto)", self.lr_finding_.suggestion)
        return config.resolved(lr=self.lr_finding_.suggestion)

    def _range_test(self, config, splits, cache, timings) -> LRFinding:
        """The range test on the head over cached features (:mod:`graft.training.lr_finder`)."""
        loaders = self._loaders(config, splits, cache, timings)
        phase = Phase(name="lr_find", epochs=1, backbone_groups=0, head_lr=FALLBACK_LR)
        module = self._modules(config, splits)(phase)
        train_loader = loaders.head_only()[0]
        return find_learning_rate(module, train_loader, _engine(config), config.seed)

    def _loaders(self, config, splits, cache, timings) -> FitLoaders:
        return FitLoaders.for_fit(
            config, splits, self.backbone_, cache, timings, task=self.fitted_task_
        )

    def _modules(self, config: FitConfig, splits: DataSplits) -> ModuleFactory:
        """What builds each phase's training module, with this fit's options."""
        class_weights = None
        if config.class_weights == "auto":
            class_weights = self.fitted_task_.class_weights(splits.train)
        mixup = None
        if isinstance(self.fitted_task_, SingleLabel):  # images: mixup and cutmix; audio: mixup; text: none
            modality = self.backbone_.modality
            mixup = mixup_for(config.augment, len(self.classes_), config.label_smoothing, modality)
        return ModuleFactory(
            self.fitted_task_,
            self.head_,
            self.backbone_,
            dict(
                label_smoothing=config.label_smoothing,
                weight_decay=config.weight_decay,
                class_weights=class_weights,
            ),
            mixup,
            from_scratch=self.backbone_.spec.startswith(SCRATCH_PREFIX),
        )

    def _train(self, config, splits, cache, timings, run_dir, resume, adaptation, semi) -> None:
        """Train the strategy's phases; keep the best (``history_``, ``kept_phase_``)."""
        engine = _engine(config)
        loaders = self._loaders(config, splits, cache, timings)
        loaders.world_size = engine.world_size
        networks = {"backbone": self.backbone_, "head": self.head_}
        networks.update(self.fitted_task_.networks())
        phases = STRATEGIES[config.strategy]().phases(config, self.backbone_)
        phases = self.fitted_task_.plan(phases)  # as the task trains them
        if getattr(self, "few_labels_", None) is not None:  # every example trains: no choice
            phases = self.few_labels_.plan(phases)
        with tempfile.TemporaryDirectory(prefix="graft-") as scratch:
            runner = PhaseRunner(
                networks,
                self._modules(config, splits),
                loaders,
                engine,
                config.seed,
                Path(run_dir or scratch),
                resume,
                timings,
                trainers=STRATEGIES[config.strategy]().trainers(config),
            )
            self.history_ = runner.run(phases, adaptation)
            self.kept_phase_ = runner.best.restore()
            if semi is not None:  # self-training on the unlabelled data, the backbone fixed
                self.history_ += semi.train(runner, cache)
                self.semi_supervised_ = semi
        self.epoch_choice_ = runner.epoch_choice

    def _evaluate(self, config, splits, cache, timings, adaptation) -> None:
        """Tune the task's decision rules on validation data; the metrics of every split."""
        task = self.fitted_task_
        frozen = STRATEGIES[config.strategy].frozen_backbone and isinstance(task, CachesFeatures)
        frozen = cache if frozen else None
        if tunes(task):
            task.tune(self._outputs(splits.val, frozen), splits.val)
        self.metrics_ = {
            name: task.metrics(self._outputs(part, frozen), part)
            for name, part in (("val", splits.val), ("test", splits.test))
            if part is not None
        }
        if adaptation is not None:
            self.metrics_.update(
                adaptation.measure_after(
                    splits,
                    self.backbone_,
                    self.head_,
                    frozen,
                    lambda data: task.metrics(self._outputs(data, frozen), data),
                    timings,
                )
            )

    def _estimate(self, splits, inputs, semi, timings) -> dict | None:
        """With few labels, the k-fold cross-validated estimate (``metrics.json``'s
        ``cross_validation``); with unlabelled data, the guard's choice between the
        semi-supervised and the labelled-only model (by that estimate, or by validation)."""
        few = getattr(self, "few_labels_", None)
        record = None
        if few is not None and few.folds:
            record = few.cross_validate(splits.train, lambda part: self._fold(part, inputs))
            timings["cross_validation"] = record["seconds"]
        if semi is not None:
            semi.decide(record)
        if record is None:
            return None
        return kept_estimate(record, semi.kept if semi is not None else LABELLED_ONLY)

    def _fold(self, train: DataLike, inputs: FitData) -> GraftEstimator:
        """The fit of one cross-validation fold: this fit's settings as resolved, on ``train``
        (with the same unlabelled data), without an estimate of its own."""
        fold = type(self)(**{**self.config_.to_dict(), "cv_folds": 0, "progress": False})
        data = FitData(train, columns=inputs.columns, unlabeled=inputs.unlabeled)
        fold._fit(data, None, False, False)
        return fold

    def _scratch_baseline(self, splits: DataSplits, timings: dict[str, float]) -> dict:
        """Train the from-scratch control (:mod:`graft.selection.baseline`); its gain record."""
        start = time.perf_counter()
        transfer = fit_scratch_baseline(self, splits, type(self))
        timings["baseline"] = time.perf_counter() - start
        if transfer["verdict"] == "negative transfer":
            log.warning(
                "negative transfer: %s from scratch scores higher than pretrained %s",
                self.model_,
                self.model_,
            )
        return transfer

    def _summary(self, splits: DataSplits, cache: FeatureCache, timings: dict) -> dict:
        stats = cache.stats
        summary = self.fitted_task_.data_summary(splits, self.backbone_)
        summary.update(self.fitted_task_.summary(splits))
        summary["feature_cache"] = {"hits": stats.hits, "misses": stats.misses}
        summary["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        summary["kept_phase"] = self.kept_phase_
        if getattr(self, "few_labels_", None) is not None:
            summary["few_labels"] = self.split_
        for key in ("cross_validation", "semi_supervised"):
            if key in self.metrics_:
                summary[key] = self.metrics_[key]
        if hasattr(self, "lr_finding_"):
            summary["lr_finder"] = self.lr_finding_.to_dict()
        if hasattr(self, "advice_"):
            summary["advice"] = self.advice_.to_dict()
        if self.epoch_choice_:
            summary["epoch_choice"] = self.epoch_choice_
        for key in ("transfer", "adaptation"):
            if key in self.metrics_:
                summary[key] = self.metrics_[key]
        return summary

    def find_lr(self, data: DataLike, val: DataLike | None = None, **columns) -> LRFinding:
        """Run the learning-rate range test for ``data`` without fitting; the suggestion is
        what ``lr="auto"`` would pick (``.plot(path)`` draws the curve)."""
        splits, task = self._read_data(FitData(data, val, None, _columns(columns)))
        config = self.config.for_kind(task.kind).resolved(
            model=self.config.model or DEFAULT_MODELS[splits.train.modality]
        )
        backbone = type(task).build_backbone(config, splits.train)
        torch.manual_seed(config.seed)
        self.fitted_task_, self.backbone_ = task, backbone
        self.head_ = task.new_head(backbone)
        self.model_ = config.model
        cache = FeatureCache(Path(config.cache_dir) / "features" if config.cache_dir else None)
        return self._range_test(config, splits, cache, {})

    # Evaluation ---------------------------------------------------------------------------------

    def evaluate(self, data: DataLike, **columns: str | None) -> dict:
        """The task's metrics on labelled ``data``: multiclass, accuracy, macro-F1, per-class
        precision/recall/F1 and the confusion matrix; multilabel, micro- and macro-F1, subset
        accuracy and per-label precision/recall/F1; regression, MSE, RMSE, MAE and R²; several
        tasks, each task's on the rows labelled for it."""
        self._check_fitted()
        data = self.fitted_task_.read_labelled(data, _columns(columns))
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


def _columns(columns: dict) -> dict[str, str | None]:
    names = ("text_column", "image_column", "label_column", "audio_column")
    return {name: columns.get(name) for name in names}


def _check_run_options(config: FitConfig, out, train_size: int) -> None:
    """Refuse a logger without a run directory (or its package); warn of a batch larger than
    the data."""
    from graft.training.engine import require_logger

    if config.logger != "csv":
        require_logger(config.logger)
        if out is None:
            raise ConfigError(
                f"--logger {config.logger} writes into the run directory: give --out too"
            )
    if config.batch_size > train_size:
        log.warning(
            "--batch-size %d is larger than the %d training examples: every epoch is one "
            "batch of %d",
            config.batch_size,
            train_size,
            train_size,
        )


def _engine(config: FitConfig) -> EngineOptions:
    return EngineOptions(
        precision=config.precision,
        devices=config.devices,
        num_nodes=config.num_nodes,
        distributed=None if config.distributed == "none" else config.distributed,
        grad_clip=config.grad_clip,
        progress=config.progress,
        logger=config.logger,
    )


def _write_report(run_dir: Path) -> None:
    """The run's ``report.html``; the saved model stands even when the report cannot be drawn."""
    from graft.report.page import write_report

    try:
        write_report(run_dir)
    except Exception as error:  # noqa: BLE001  (a plot failing must not fail a finished fit)
        log.warning(
            "report.html not written (%s); rebuild it with: graft report %s", error, run_dir
        )


#: The name graft's estimator had while it fitted only classes (kept: the same class).
GraftClassifier = GraftEstimator
