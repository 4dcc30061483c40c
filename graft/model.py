"""The estimator: ``GraftClassifier(...).fit(data)``, then ``predict``, ``evaluate``, ``save``.

It follows scikit-learn's conventions: hyperparameters go to the constructor and are checked
there, fitted state lives in attributes ending in ``_``, and the same parameters and seed give
the same model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from graft.adaptation import create_adaptation
from graft.adaptation.guard import SOURCE_ONLY_SUFFIX, guard_adaptation
from graft.adaptation.target import (
    TARGET_SAMPLE,
    TargetDomain,
    domain_features,
    domain_gap,
    label_free_scores,
    load_target_items,
    sample_items,
)
from graft.backbones import Backbone, create_backbone
from graft.backbones.registry import SCRATCH_PREFIX
from graft.config import DEFAULT_MODELS, FitConfig
from graft.data import DataSplits, LabelledData, load_inputs, load_splits, train_val_split
from graft.data.transforms import Collate, InputDataset, mixup_for
from graft.errors import ConfigError, DataError, GraftError, RunError
from graft.evaluation import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    tune_thresholds,
)
from graft.features import CacheStats, FeatureCache, to_device
from graft.heads import ClassificationHead
from graft.runs import check_run_dir, finish_run, run_lock, start_run
from graft.selection.advisor import advise_strategy
from graft.selection.baseline import fit_scratch_baseline
from graft.strategies import STRATEGIES
from graft.training import TransferModule, run_phase
from graft.training.adaptation import TARGET_MONITOR, AdaptationModule
from graft.training.engine import EngineOptions, is_global_zero, require_logger
from graft.training.imbalance import balanced_class_weights, balanced_sampler
from graft.training.lr_finder import FALLBACK_LR, LRFinding, find_learning_rate
from graft.training.module import Phase
from graft.training.sampling import EpochSampler, loader_workers, seeded_order, worker_options

log = logging.getLogger("graft")

DataLike = str | os.PathLike | LabelledData

#: Fewer validation examples than this cannot choose a head epoch: on 8 and 64 sst2 reviews
#: per class with minilm, keeping the epoch of lowest loss on the 4 or 26 held-out reviews
#: kept a head trained for 1 to 9 epochs (test accuracy 0.52-0.71), where the last of its 30
#: epochs reached 0.61-0.75 (bench/RESULTS.md, graft against its peers).
MIN_VAL_TO_CHOOSE_EPOCH = 50


class NotFittedError(GraftError, AttributeError):
    """The model has not been fitted (or loaded) yet."""


class GraftClassifier:
    """Adapts a pretrained backbone to a labelled dataset with a new head.

    The head classifies (one class per input, or any number of labels per input) or regresses
    a number, by the task of the data (``task_``, inferred unless ``task`` is given).

    Args:
        **params: any field of :class:`graft.config.FitConfig` (``model``, ``strategy``,
            ``epochs``, ``batch_size``, ``lr``, ``seed``, ``task``, ...).

    Attributes (after ``fit`` or :func:`graft.load`):
        task_: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        classes_: class (or label) names, in the order of the probability columns; for
            regression, the target's name.
        thresholds_: multilabel: each label's decision threshold, tuned on validation data.
        target_stats_: regression: the training target's ``(mean, std)``; the head predicts
            the standardised target.
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

    def __init__(self, **params: Any):
        unknown = set(params) - set(FitConfig().to_dict())
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        self.config = FitConfig(**params).validate()
        if self.config.tasks and not self._multitask:
            raise ConfigError(
                "tasks=... trains several tasks at once: use graft.fit(data, tasks=...) or "
                "graft.MultiTaskClassifier"
            )

    #: Whether this estimator trains several tasks (:class:`graft.multitask.MultiTaskClassifier`).
    _multitask = False

    def get_params(self) -> dict[str, Any]:
        return self.config.to_dict()

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
    ) -> GraftClassifier:
        """Train on ``data`` (a folder, a table, or a :class:`LabelledData`).

        Validation data comes from ``val``, a ``val/`` folder beside ``train/``, or a seeded
        stratified split of ``data``. With ``out``, the run directory is written there and
        checkpointed every epoch; ``resume=True`` continues an interrupted run in ``out``
        (see :func:`graft.resume`). ``target``: unlabelled data of the domain the model must
        serve, which the ``adapt`` method aligns the features with (with ``adapt="none"`` it
        is only measured); ``target_test``: labelled target data, evaluated at the end.
        A run directory that another process is writing is refused (:func:`run_lock`).
        """
        columns = dict(
            text_column=text_column, image_column=image_column, label_column=label_column
        )
        # Under a DDP launcher every process runs this fit; the others pick up what the first
        # one finished (resume) and never write the run directory.
        resume = resume or not is_global_zero()
        if out is not None and not resume:
            check_run_dir(out, overwrite)
        with run_lock(out if is_global_zero() else None, create=not resume):
            return self._fit(data, val, test, out, overwrite, resume, columns, target, target_test)

    def _fit(
        self,
        data,
        val,
        test,
        out,
        overwrite: bool,
        resume: bool,
        columns: dict,
        target,
        target_test,
    ) -> GraftClassifier:
        started = time.perf_counter()
        splits = self._resolve_splits(data, val, test, columns)
        config = self.config
        config.model = config.model or DEFAULT_MODELS[splits.train.modality]
        if config.logger != "csv":
            require_logger(config.logger)
            if out is None:
                raise ConfigError(
                    f"--logger {config.logger} writes into the run directory: give --out too"
                )
        if config.batch_size > len(splits.train):
            log.warning(
                "--batch-size %d is larger than the %d training examples: every epoch is one "
                "batch of %d",
                config.batch_size,
                len(splits.train),
                len(splits.train),
            )
        backbone = self._create_backbone()
        if backbone.modality != splits.train.modality:
            raise ConfigError(
                f"--model {config.model} is a {backbone.modality} backbone, but "
                f"{splits.train.source} holds {splits.train.modality} data"
            )
        if config.views > 1 and backbone.modality != "image":
            raise ConfigError("--views caches augmented views of images; this data is text")
        domain = self._resolve_target(target, target_test, splits, columns)
        run_dir = None
        if out is not None:
            self.arguments_ = _arguments(data, val, test, columns, target, target_test)
            run_dir = start_run(out, overwrite, resume, config.to_dict(), self.arguments_)
        cache = FeatureCache(Path(config.cache_dir) / "features" if config.cache_dir else None)
        timings: dict[str, float] = {}
        if config.strategy == "auto":
            self.advice_ = advise_strategy(
                splits.train,
                splits.val,
                backbone,
                cache,
                config.batch_size,
                self._num_workers(),
                adapting=config.adapt != "none",
            )
            config.strategy = self.advice_.strategy
            timings["advice"] = self.advice_.measurements.feature_seconds
            log.info("--strategy auto chose %s: %s", config.strategy, self.advice_.reason)
        strategy = STRATEGIES[config.strategy]()
        gap_before = self._gap_before(splits, domain, backbone, cache) if domain else None
        torch.manual_seed(config.seed)  # the head's initialisation
        self.backbone_ = backbone
        self.head_ = self._new_head()
        self.strategy_ = strategy
        strategy.prepare(config, backbone)  # lora: adapters, seeded like the head
        best = _BestPhase(self._networks())
        if config.lr == "auto":
            self.lr_finding_ = self._find_lr(splits, cache, timings)
            config.lr = self.lr_finding_.suggestion
            log.info("learning rate %.3g, from the range test (--lr auto)", config.lr)
        with tempfile.TemporaryDirectory(prefix="graft-") as scratch:
            work_dir = run_dir or Path(scratch)
            self.history_ = self._train(splits, cache, best, work_dir, timings, resume, domain)
        self.kept_phase_ = best.restore()
        self._tune_thresholds(splits.val, cache if strategy.frozen_backbone else None)
        self.metrics_ = {
            name: self._metrics(part, cache if strategy.frozen_backbone else None)
            for name, part in (("val", splits.val), ("test", splits.test))
            if part is not None
        }
        if domain is not None:
            self._measure_target(splits, domain, gap_before, cache, timings)
        timings["total"] = time.perf_counter() - started
        if config.baseline == "scratch":
            self.metrics_["transfer"] = self._scratch_baseline(splits, timings)
        self.summary_ = self._summary(splits, cache.stats, timings)
        self.summary_["kept_phase"] = self.kept_phase_
        if hasattr(self, "lr_finding_"):
            self.summary_["lr_finder"] = self.lr_finding_.to_dict()
        if hasattr(self, "advice_"):
            self.summary_["advice"] = self.advice_.to_dict()
        if self.epoch_choice_:
            self.summary_["epoch_choice"] = self.epoch_choice_
        for key in ("transfer", "adaptation"):
            if key in self.metrics_:
                self.summary_[key] = self.metrics_[key]
        self.splits_ = splits
        if run_dir is not None and is_global_zero():
            self.save(run_dir, overwrite=True)
            finish_run(run_dir)
            _write_report(run_dir)
        return self

    def _train(
        self,
        splits: DataSplits,
        cache: FeatureCache,
        best: _BestPhase,
        work_dir: Path,
        timings: dict[str, float],
        resume: bool = False,
        domain: TargetDomain | None = None,
    ) -> list[dict]:
        """Run the strategy's phases through the engine; return the per-epoch history.

        With a target domain and an ``adapt`` method, the phases that train the backbone
        adapt it (:class:`AdaptationModule`) and keep their epoch of best label-free target
        score. Under the source-risk guard (``adapt_guard``, :mod:`graft.adaptation.guard`)
        each such phase also trains source-only from the same weights, and the adapted weights
        are kept only when they score no worse on the source validation data; an adapted phase
        that passes is kept even if the source score is below an earlier phase's.
        """
        config, history = self.config, []
        self.adapt_guard_: list[dict] = []
        self.epoch_choice_: str | None = None
        for phase in self.strategy_.phases(config, self.backbone_):
            phase_start = time.perf_counter()
            adapting = phase.train_backbone and domain is not None and config.adapt != "none"
            run = dict(splits=splits, cache=cache, work_dir=work_dir, resume=resume)
            if adapting and config.adapt_guard:
                rows, adapted = self._guarded_phase(phase, domain, timings, run)
            else:
                rows, adapted = self._phase(phase, domain if adapting else None, timings, run)
            history += rows
            best.update(phase.name, rows, keep=adapted)
            timings[f"phase_{phase.name}"] = time.perf_counter() - phase_start
        return history

    def _phase(
        self, phase: Phase, domain: TargetDomain | None, timings: dict, run: dict
    ) -> tuple[list[dict], bool]:
        """Train one phase (adapting to ``domain`` when given); its history, and whether it
        adapted."""
        splits, cache = run["splits"], run["cache"]
        if not phase.train_backbone and len(splits.val) < MIN_VAL_TO_CHOOSE_EPOCH:
            phase = dataclasses.replace(phase, keep_last=True)
            self.epoch_choice_ = (
                f"the {phase.name} phase kept its last epoch: {len(splits.val)} validation "
                f"examples are too few to choose one by (fewer than {MIN_VAL_TO_CHOOSE_EPOCH})"
            )
            log.info(self.epoch_choice_)
        if domain is not None:
            phase = dataclasses.replace(phase, monitor=TARGET_MONITOR)
            train_loader, val_loader = self._adaptation_loaders(splits, domain)
        elif phase.train_backbone:
            train_loader, val_loader = self._input_loaders(splits)
        else:
            train_loader, val_loader = self._feature_loaders(splits, cache, timings)
        module = self._module(phase, splits, adapting=domain is not None)
        trained = module.trained_parameters()
        log.info("phase %s: training %s parameters", phase.name, f"{trained:,}")
        rows = run_phase(
            module,
            train_loader,
            val_loader,
            _phase_work_dir(run["work_dir"], phase),
            self.config.seed,
            self._engine_options(),
            run["resume"],
        )
        for row in rows:
            row["trained_parameters"] = trained
        return rows, domain is not None

    def _guarded_phase(
        self, phase: Phase, domain: TargetDomain, timings: dict, run: dict
    ) -> tuple[list[dict], bool]:
        """Train ``phase`` source-only, then adapted from the same weights; keep the adapted
        weights only if :func:`guard_adaptation` accepts them. Returns both histories (the
        source-only phase named ``<phase>-source-only``) and whether the adapted one was kept."""
        networks = {"backbone": self.backbone_, "head": self.head_}
        start = _Snapshot(networks)
        source_phase = dataclasses.replace(phase, name=f"{phase.name}{SOURCE_ONLY_SUFFIX}")
        source_rows, _ = self._phase(source_phase, None, timings, run)
        source_only = _Snapshot(networks)
        start.restore()
        adapted_rows, _ = self._phase(phase, domain, timings, run)
        decision = guard_adaptation(source_rows, adapted_rows)
        if decision.kept == "source-only":
            source_only.restore()
            for row in adapted_rows:  # the phase's kept epoch is the source-only one
                row["kept"] = False
        else:
            for row in source_rows:
                row["kept"] = False
        log.info("phase %s: %s", phase.name, decision.reason)
        self.adapt_guard_.append({"phase": phase.name, **decision.to_dict()})
        return source_rows + adapted_rows, decision.kept == "adapted"

    def _scratch_baseline(self, splits: DataSplits, timings: dict[str, float]) -> dict:
        """Train the from-scratch control (:mod:`graft.selection.baseline`); its gain record."""
        start = time.perf_counter()
        transfer = fit_scratch_baseline(self, splits)
        timings["baseline"] = time.perf_counter() - start
        if transfer["verdict"] == "negative transfer":
            log.warning(
                "negative transfer: %s from scratch scores higher than pretrained %s",
                self.config.model,
                self.config.model,
            )
        return transfer

    def _module(self, phase: Phase, splits: DataSplits, adapting: bool = False) -> TransferModule:
        """The LightningModule of one phase: a fresh one (and optimiser) for each; with
        ``adapting``, one that also aligns target features (mixup is left out: it would mix
        the source batch that the alignment compares with the target's)."""
        config = self.config
        if self.backbone_.spec.startswith(SCRATCH_PREFIX):  # no pretrained statistics to keep
            phase = dataclasses.replace(phase, batchnorm_statistics=True)
        options = dict(
            label_smoothing=config.label_smoothing,
            weight_decay=config.weight_decay,
            class_weights=self._class_weights(splits),
            **self._task_options(),
        )
        backbone = self.backbone_ if phase.train_backbone else None
        if adapting:
            torch.manual_seed(config.seed)  # the discriminator's initialisation
            adaptation = create_adaptation(config.adapt, self.backbone_.feature_dim)
            return AdaptationModule(
                self.head_,
                phase,
                backbone,
                adaptation=adaptation,
                adapt_weight=config.adapt_weight,
                **options,
            )
        mixup = self._mixup() if phase.train_backbone else None
        return TransferModule(self.head_, phase, backbone, mixup=mixup, **options)

    def _create_backbone(self) -> Backbone:
        """The configured backbone, its images resized to ``image_size`` and its texts cut to
        ``max_length`` tokens when given."""
        backbone = create_backbone(self.config.model)
        size, length = self.config.image_size, self.config.max_length
        if size is not None:
            if backbone.modality != "image":
                raise ConfigError(f"--image-size resizes images; {self.config.model} reads text")
            backbone.preprocessing = dataclasses.replace(
                backbone.preprocessing, input_size=(size, size)
            )
        if length is not None:
            if backbone.modality != "text":
                raise ConfigError(f"--max-length cuts texts; {self.config.model} reads images")
            limit = getattr(getattr(backbone, "model", None), "config", None)
            limit = getattr(limit, "max_position_embeddings", None)
            if limit is not None and length > limit:
                raise ConfigError(
                    f"--max-length {length} is over the {limit} positions {self.config.model} has"
                )
            backbone.preprocessing = dataclasses.replace(backbone.preprocessing, max_length=length)
        return backbone

    # Domain adaptation ---------------------------------------------------------------------------

    def _resolve_target(
        self, target, target_test, splits: DataSplits, columns: dict
    ) -> TargetDomain | None:
        """The target domain of the fit, or None; ``adapt`` needs one."""
        if target is None:
            if self.config.adapt != "none":
                raise ConfigError(
                    f"--adapt {self.config.adapt} adapts to unlabelled target data: "
                    "give it with --target-unlabeled TARGET"
                )
            if target_test is not None:
                raise ConfigError("--target-test needs --target-unlabeled TARGET too")
            return None
        modality = splits.train.modality
        column = columns.get("text_column" if modality == "text" else "image_column")
        items = load_target_items(target, modality, column)
        test = None
        if target_test is not None:
            task = dict(task=splits.train.task, label_delimiter=splits.train.label_delimiter)
            test = _as_data(target_test, columns, **task)
            if test.modality != modality:
                raise DataError(f"--target-test {test.source} holds {test.modality} data")
            test = test.relabel(splits.train.classes)
        source = target.source if isinstance(target, LabelledData) else str(target)
        return TargetDomain(items, source, test)

    def _sampled_features(
        self,
        splits: DataSplits,
        domain: TargetDomain,
        backbone: Backbone,
        cache: FeatureCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``backbone``'s features of the seeded samples of source training and target items
        that the domain gap compares, before training and after."""
        seed, batch, workers = self.config.seed, self.config.batch_size, self._num_workers()
        source = sample_items(splits.train.items, TARGET_SAMPLE, seed)
        return (
            domain_features(backbone, source, batch, workers, cache),
            domain_features(backbone, domain.sample(seed), batch, workers, cache),
        )

    def _gap_before(
        self, splits: DataSplits, domain: TargetDomain, backbone: Backbone, cache: FeatureCache
    ) -> float:
        """The proxy A-distance between the domains on the pretrained backbone's features."""
        features = self._sampled_features(splits, domain, backbone, cache)
        return domain_gap(*features, self.config.seed)

    def _measure_target(
        self,
        splits: DataSplits,
        domain: TargetDomain,
        gap_before: float,
        cache: FeatureCache,
        timings: dict,
    ) -> None:
        """Record the domain gap after training, the label-free scores of the target
        predictions and, with labelled target data, its metrics."""
        start = time.perf_counter()
        frozen = cache if self.strategy_.frozen_backbone else None
        source_features, target_features = self._sampled_features(
            splits, domain, self.backbone_, frozen
        )
        self.metrics_["adaptation"] = {
            "method": self.config.adapt,
            "weight": self.config.adapt_weight,
            "target": domain.source,
            "target_items": len(domain.items),
            "domain_gap": {
                "measure": "proxy A-distance",
                "before": gap_before,
                "after": domain_gap(source_features, target_features, self.config.seed),
            },
            "label_free": label_free_scores(self.head_, target_features),
        }
        if self.adapt_guard_:
            self.metrics_["adaptation"]["guard"] = self.adapt_guard_
        if domain.test is not None:
            self.metrics_["target_test"] = self._metrics(domain.test, frozen)
        timings["target"] = time.perf_counter() - start

    def _find_lr(self, splits: DataSplits, cache: FeatureCache, timings: dict) -> LRFinding:
        """The range test on the head over cached features; see :mod:`graft.training.lr_finder`."""
        train_loader, _ = self._feature_loaders(splits, cache, timings)
        phase = Phase(name="lr_find", epochs=1, backbone_groups=0, head_lr=FALLBACK_LR)
        return find_learning_rate(
            self._module(phase, splits), train_loader, self._engine_options(), self.config.seed
        )

    def find_lr(self, data: DataLike, val: DataLike | None = None, **columns) -> LRFinding:
        """Run the learning-rate range test for ``data`` without fitting; the suggestion is
        what ``lr="auto"`` would pick (``.plot(path)`` draws the curve)."""
        config = self.config
        splits = self._resolve_splits(data, val, None, columns)
        config.model = config.model or DEFAULT_MODELS[splits.train.modality]
        self.backbone_ = self._create_backbone()
        torch.manual_seed(config.seed)
        self.head_ = self._new_head()
        cache = FeatureCache(Path(config.cache_dir) / "features" if config.cache_dir else None)
        return self._find_lr(splits, cache, {})

    def _resolve_splits(self, data, val, test, columns) -> DataSplits:
        config = self.config
        task = dict(task=config.task, label_delimiter=config.label_delimiter)
        splits = (
            load_splits(data, **columns, **task)
            if not isinstance(data, LabelledData)
            else DataSplits(data)
        )
        task = dict(task=splits.train.task, label_delimiter=splits.train.label_delimiter)
        if val is not None:
            splits.val = _as_data(val, columns, **task)
        if test is not None:
            splits.test = _as_data(test, columns, **task)
        self._set_task(splits.train)
        if splits.val is None:
            train_idx, val_idx = train_val_split(
                splits.train, self.config.val_fraction, self.config.seed
            )
            self.split_ = {"seed": self.config.seed, "val_fraction": self.config.val_fraction}
            splits = DataSplits(
                splits.train.subset(train_idx), splits.train.subset(val_idx), splits.test
            )
        else:
            self.split_ = None
        for name in ("val", "test"):
            part = getattr(splits, name)
            if part is None:
                continue
            if not len(part):
                raise DataError(f"the {name} data {part.source} holds no examples")
            if part.modality != splits.train.modality:
                raise DataError(
                    f"{part.source} holds {part.modality} data but the training data "
                    f"{splits.train.source} holds {splits.train.modality}"
                )
            if part.task != splits.train.task:
                raise DataError(
                    f"{part.source} holds {part.task} labels but the training data "
                    f"{splits.train.source} holds {splits.train.task} ones"
                )
            setattr(splits, name, part.relabel(splits.train.classes))
        if self.task_ == "regression":
            self.target_stats_ = regression_stats(splits.train)
        return splits

    def _set_task(self, train: LabelledData) -> None:
        """Record the training data's task and classes; refuse the options that only
        multiclass has."""
        self.classes_ = list(train.classes)
        task = self.task_ = train.task
        log.info("task: %s", task)
        if task != "multiclass":
            if self.config.class_weights == "auto":
                raise ConfigError(f"--class-weights auto weighs classes; this data is {task}")
            if self.config.sampler == "balanced":
                raise ConfigError(f"--sampler balanced draws classes evenly; this data is {task}")
        self.label_delimiter_ = train.label_delimiter
        self.thresholds_ = np.full(len(train.classes), 0.5) if task == "multilabel" else None
        self.target_stats_ = None

    def _task_options(self) -> dict:
        """The task's arguments of :class:`TransferModule`."""
        return {"task": self.task_, "target_stats": self.target_stats_ or (0.0, 1.0)}

    def _tune_thresholds(self, val: LabelledData, cache: FeatureCache | None) -> None:
        """Multilabel: set each label's threshold to the one with the best validation F1."""
        if self.task_ != "multilabel":
            return
        probabilities = torch.sigmoid(self._logits(val.items, cache)).numpy()
        self.thresholds_ = tune_thresholds(probabilities, val.labels)

    def _num_workers(self) -> int:
        return loader_workers(self.config.num_workers)

    def _class_weights(self, splits: DataSplits) -> torch.Tensor | None:
        if self.config.class_weights != "auto":
            return None
        return balanced_class_weights(splits.train.labels, len(self.classes_))

    def _mixup(self):
        if self.backbone_.modality != "image" or self.task_ != "multiclass":
            return None
        return mixup_for(self.config.augment, len(self.classes_), self.config.label_smoothing)

    def _new_head(self) -> ClassificationHead:
        return ClassificationHead(self.backbone_.feature_dim, len(self.classes_))

    def _networks(self) -> dict[str, torch.nn.Module]:
        """What training changes, which :class:`_BestPhase` keeps the best state of."""
        return {"backbone": self.backbone_, "head": self.head_}

    def _engine_options(self) -> EngineOptions:
        config = self.config
        return EngineOptions(
            precision=config.precision,
            devices=config.devices,
            num_nodes=config.num_nodes,
            distributed=None if config.distributed == "none" else config.distributed,
            grad_clip=config.grad_clip,
            progress=config.progress,
            logger=config.logger,
        )

    def _train_order(self, labels: np.ndarray, distributed: bool = False) -> dict:
        """DataLoader options for the training order, a function of (seed, epoch) only: a
        seeded shuffle or class-balanced draws; across processes, Lightning's
        DistributedSampler (seeded, reshuffled every epoch)."""
        generator = torch.Generator().manual_seed(self.config.seed)  # reseeded every epoch
        if self.config.sampler == "balanced":
            return {"sampler": balanced_sampler(labels, self.config.seed), "generator": generator}
        if distributed:
            return {"shuffle": True, "generator": generator}
        return seeded_order(len(labels), self.config.seed)

    def _feature_loaders(self, splits: DataSplits, cache: FeatureCache, timings: dict):
        start = time.perf_counter()
        batch, workers = self.config.batch_size, self._num_workers()
        views = self.config.views if self.backbone_.modality == "image" else 1
        train_x = torch.cat(
            [
                cache.features(self.backbone_, splits.train, batch, workers, v, self.config.augment)
                for v in range(views)
            ]
        )
        val_x = cache.features(self.backbone_, splits.val, batch, workers)
        timings["features"] = timings.get("features", 0.0) + time.perf_counter() - start
        train_labels = np.concatenate([splits.train.labels] * views)
        train = TensorDataset(train_x, torch.as_tensor(train_labels))
        val = TensorDataset(val_x, torch.as_tensor(splits.val.labels))
        return (
            DataLoader(train, batch_size=batch, **self._train_order(train_labels)),
            DataLoader(val, batch_size=512),
        )

    def _adaptation_loaders(self, splits: DataSplits, domain: TargetDomain):
        """Training: source and target batches in step (the target's seeded shuffles drawn
        to the source's length); validation: source, unlabelled target sample, labelled
        target (when given), in :mod:`graft.training.adaptation`'s order."""
        from lightning.pytorch.utilities import CombinedLoader

        source_train, source_val = self._input_loaders(splits)
        config, preprocessing = self.config, self.backbone_.preprocessing
        options = self._loader_options()
        target_train = DataLoader(
            InputDataset(domain.items, None, preprocessing, train=True, augment=config.augment),
            batch_size=config.batch_size,
            sampler=EpochSampler(len(domain.items), config.seed + 1, length=len(splits.train)),
            generator=torch.Generator().manual_seed(config.seed + 1),
            **options,
        )
        evaluate = dict(batch_size=config.batch_size * 2, **options)
        val = [
            source_val,
            DataLoader(InputDataset(domain.sample(config.seed), None, preprocessing), **evaluate),
        ]
        if domain.test is not None:
            test = InputDataset(domain.test.items, domain.test.labels, preprocessing)
            val.append(DataLoader(test, **evaluate))
        train = CombinedLoader({"source": source_train, "target": target_train}, mode="min_size")
        return train, val

    def _loader_options(self) -> dict:
        """The DataLoader options every loader of raw inputs shares."""
        return dict(
            collate_fn=Collate(self.backbone_.preprocessing),
            **worker_options(self._num_workers()),
        )

    def _input_loaders(self, splits: DataSplits):
        preprocessing = self.backbone_.preprocessing
        options = self._loader_options()
        train = InputDataset(
            splits.train.items,
            splits.train.labels,
            preprocessing,
            train=True,
            augment=self.config.augment,
        )
        val = InputDataset(splits.val.items, splits.val.labels, preprocessing)
        return (
            DataLoader(
                train,
                batch_size=self.config.batch_size,
                **self._train_order(splits.train.labels, self._engine_options().world_size > 1),
                **options,
            ),
            DataLoader(val, batch_size=self.config.batch_size * 2, **options),
        )

    def _summary(self, splits: DataSplits, stats: CacheStats, timings: dict) -> dict:
        parts = {n: getattr(splits, n) for n in ("train", "val", "test") if getattr(splits, n)}
        skipped = {n: p.skipped for n, p in parts.items() if p.skipped}
        return {
            "modality": splits.train.modality,
            "task": self.task_,
            "examples": {n: len(p) for n, p in parts.items()},
            "class_counts": {n: p.class_counts() for n, p in parts.items()},
            "skipped": {n: [{"input": w, "reason": r} for w, r in s] for n, s in skipped.items()},
            "skipped_count": sum(len(s) for s in skipped.values()),
            "duplicates": _duplicates(parts),
            **(
                {"truncated_texts": self._truncated(parts)}
                if self.backbone_.modality == "text"
                else {}
            ),
            "feature_cache": {"hits": stats.hits, "misses": stats.misses},
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }

    def _truncated(self, parts: dict[str, LabelledData]) -> dict:
        """How many texts of each split are longer than the backbone reads (cut to
        ``max_length`` tokens), logged when any are."""
        from transformers import AutoTokenizer

        preprocessing = self.backbone_.preprocessing
        tokenizer = AutoTokenizer.from_pretrained(preprocessing.tokenizer)
        counts = {}
        for name, part in parts.items():
            lengths = [len(ids) for ids in tokenizer(part.items, truncation=False)["input_ids"]]
            counts[name] = sum(length > preprocessing.max_length for length in lengths)
        if any(counts.values()):
            log.warning(
                "texts longer than %d tokens were cut to that length: %s",
                preprocessing.max_length,
                ", ".join(f"{n} {c} of {len(parts[n])}" for n, c in counts.items()),
            )
        return {"max_length": preprocessing.max_length, **counts}

    # Inference ----------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("this model is not fitted yet: call fit() or graft.load()")

    @torch.inference_mode()
    def _logits(self, items: list[str], cache: FeatureCache | None = None) -> torch.Tensor:
        self._check_fitted()
        if cache is not None:
            data = LabelledData(items, None, [], self.backbone_.modality, "inputs")
            return self.head_.eval()(cache.features(self.backbone_, data, self.config.batch_size))
        batch_size = self.config.batch_size * 2
        if getattr(self, "engine_", None) is not None:  # an exported model (--engine onnx)
            return torch.cat([self.engine_(x) for x in self.input_batches(items, batch_size)])
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        backbone, head = self.backbone_.to(device).eval(), self.head_.to(device).eval()
        batches = self.input_batches(items, batch_size)
        chunks = [_float_cpu(head(backbone(to_device(x, device)))) for x in batches]
        backbone.cpu(), head.cpu()
        return _concatenate(chunks)

    def input_batches(self, items: list[str], batch_size: int):
        """``items`` (image paths or texts) preprocessed for the backbone, batch by batch: a
        pixel tensor, or the tokenizer's dict of tensors."""
        preprocessing = self.backbone_.preprocessing
        loader = DataLoader(
            InputDataset(items, None, preprocessing),
            batch_size=batch_size,
            collate_fn=Collate(preprocessing),
            num_workers=self._num_workers(),
        )
        return (inputs for inputs, _ in loader)

    def _items(self, inputs) -> list[str]:
        if isinstance(inputs, LabelledData):
            return inputs.items
        if isinstance(inputs, str | os.PathLike):
            inputs = [inputs]
        return load_inputs([str(v) for v in inputs], self.backbone_.modality)

    def predict_proba(self, inputs) -> np.ndarray:
        """Probabilities ``[n, len(classes_)]`` for image paths, folders, tables or texts:
        of each class (softmax), or for multilabel of each label on its own (sigmoid)."""
        self._check_fitted()
        if self.task_ == "regression":
            raise ConfigError("a regression model predicts values, not probabilities: predict()")
        return to_probabilities(self.task_, self._logits(self._items(inputs)))

    def predict(self, inputs) -> list[str] | list[list[str]] | np.ndarray:
        """The most probable class name of each input; multilabel: the list of labels at or
        above their threshold; regression: the predicted values (float64 ``[n]``)."""
        self._check_fitted()
        outputs = self._logits(self._items(inputs))
        return to_answers(self.task_, outputs, self.classes_, self.thresholds_, self.target_stats_)

    def predict_top_k(self, inputs, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ``(class, probability)`` pairs of each input."""
        if k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {k}")
        return top_k(self.predict_proba(inputs), self.classes_, k)

    def _metrics(self, data: LabelledData, cache: FeatureCache | None = None) -> dict:
        if data.task != self.task_:
            raise DataError(f"{data.source} holds {data.task} labels; this model is {self.task_}")
        data = data.relabel(self.classes_)
        outputs = self._logits(data.items, cache)
        return task_metrics(self.task_, outputs, data, self.thresholds_, self.target_stats_)

    def evaluate(self, data: DataLike, **columns: str | None) -> dict:
        """The task's metrics on labelled ``data``: multiclass, accuracy, macro-F1, per-class
        precision/recall/F1 and the confusion matrix; multilabel, micro- and macro-F1, subset
        accuracy and per-label precision/recall/F1; regression, MSE, RMSE, MAE and R²."""
        self._check_fitted()
        task = dict(task=self.task_, label_delimiter=self.label_delimiter_)
        return self._metrics(_as_data(data, columns, **task))

    def score(self, data: DataLike, **columns: str | None) -> float:
        """Accuracy (multiclass), micro-F1 (multilabel) or R² (regression) on ``data``."""
        metric = {"multiclass": "accuracy", "multilabel": "micro_f1", "regression": "r2"}
        return self.evaluate(data, **columns)[metric[self.task_]]

    # Persistence --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the model (and, after a fit, its metrics and history) to a run directory."""
        from graft.persistence import save_model

        self._check_fitted()
        return save_model(self, Path(path), overwrite)


def to_probabilities(task: str, outputs: torch.Tensor) -> np.ndarray:
    """A classification head's outputs as probabilities: of each label on its own
    (multilabel, sigmoid) or of each class (softmax)."""
    if task == "multilabel":
        return torch.sigmoid(outputs).numpy()
    return torch.softmax(outputs, dim=-1).numpy()


def to_values(outputs: torch.Tensor, target_stats: tuple[float, float]) -> np.ndarray:
    """A regression head's outputs (the standardised target) in the target's units."""
    mean, std = target_stats
    return outputs.squeeze(-1).double().numpy() * std + mean


def to_answers(
    task: str,
    outputs: torch.Tensor,
    classes: list[str],
    thresholds: np.ndarray | None = None,
    target_stats: tuple[float, float] | None = None,
) -> list[str] | list[list[str]] | np.ndarray:
    """A head's outputs as predictions: the most probable class of each input; multilabel,
    the labels at or above their threshold; regression, the values."""
    if task == "regression":
        return to_values(outputs, target_stats)
    chances = to_probabilities(task, outputs)
    if task == "multilabel":
        return [[classes[j] for j in np.flatnonzero(row)] for row in chances >= thresholds]
    return [classes[i] for i in chances.argmax(axis=1)]


def top_k(chances: np.ndarray, classes: list[str], k: int) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable ``(class, probability)`` pairs of each row of ``chances``."""
    order = np.argsort(-chances, axis=1)[:, :k]
    return [
        [(classes[j], float(row[j])) for j in idx] for row, idx in zip(chances, order, strict=True)
    ]


def task_metrics(
    task: str,
    outputs: torch.Tensor,
    data: LabelledData,
    thresholds: np.ndarray | None = None,
    target_stats: tuple[float, float] | None = None,
) -> dict:
    """The metrics of ``task`` for a head's ``outputs`` on labelled ``data`` (its labels
    indexed into the head's classes)."""
    labels = torch.as_tensor(data.labels)
    if task == "multilabel":
        return multilabel_metrics(torch.sigmoid(outputs), labels, data.classes, thresholds)
    if task == "regression":
        return regression_metrics(torch.as_tensor(to_values(outputs, target_stats)), labels)
    return classification_metrics(outputs, labels, data.classes, data.items)


def _float_cpu(outputs):
    """A head's outputs (a tensor, or a dict of them by task) as float32 on the CPU."""
    if isinstance(outputs, dict):
        return {name: value.float().cpu() for name, value in outputs.items()}
    return outputs.float().cpu()


def _concatenate(chunks: list):
    """Batches of head outputs (tensors, or dicts of them by task) joined along the batch."""
    if chunks and isinstance(chunks[0], dict):
        return {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
    return torch.cat(chunks)


class _BestPhase:
    """Keeps the weights of the phase with the best validation score (``val_score``: accuracy,
    micro-F1 or R² by task).

    A later phase that ends worse than an earlier one (fine-tuning a backbone on too little
    data can) is rolled back, so a fit never returns a model worse than one it already had.
    """

    def __init__(self, networks: dict[str, torch.nn.Module]):
        self.networks = networks
        self.accuracy = -math.inf
        self.scores: dict[str, float] = {}
        self.name: str | None = None
        self.state: dict | None = None
        self.last_was_best = True

    def update(self, name: str, rows: list[dict], keep: bool = False) -> None:
        """Record a finished phase; ``keep`` keeps it whatever its score."""
        kept = next((row for row in rows if row.get("kept")), {})
        accuracy = kept.get("val_score", -math.inf)
        self.last_was_best = keep or accuracy >= self.accuracy
        if self.last_was_best:
            self.accuracy, self.name = accuracy, name
            self.scores = {k: kept[k] for k in ("val_score", "val_acc") if k in kept}
            self.state = {
                key: {k: v.detach().clone() for k, v in net.state_dict().items()}
                for key, net in self.networks.items()
            }

    def restore(self) -> dict:
        """Load the best phase's weights if the last phase was worse; say which phase was kept."""
        if not self.last_was_best and self.state is not None:
            for key, net in self.networks.items():
                net.load_state_dict(self.state[key])
            log.info(
                "kept the %s phase (validation score %.4f): later phases did not improve it",
                self.name,
                self.accuracy,
            )
        return {"phase": self.name, **{k: round(v, 6) for k, v in self.scores.items()}}


def _arguments(data, val, test, columns: dict, target=None, target_test=None) -> dict | None:
    """The data arguments of a fit, as the run records them for ``--resume`` (None when the
    data are in-memory objects that a later process could not read back)."""
    values = {"data": data, "val": val, "test": test, "target": target, "target_test": target_test}
    if any(v is not None and not isinstance(v, str | os.PathLike) for v in values.values()):
        return None
    paths = {
        k: None if v is None else str(Path(v).expanduser().resolve()) for k, v in values.items()
    }
    return {**paths, "columns": {k: v for k, v in columns.items() if v is not None}}


def _duplicates(parts: dict[str, LabelledData]) -> dict:
    """Repeated inputs within each split, and inputs of val or test that are also in train
    (which inflate their scores), logged when there are any."""
    report = {name: part.duplicates() for name, part in parts.items()}
    train_keys = set(parts["train"].content_keys())
    for name in ("val", "test"):
        if name in parts:
            shared = sum(key in train_keys for key in parts[name].content_keys())
            report[name]["also_in_train"] = shared
    for name, found in report.items():
        extra, leaked = found["extra_copies"], found.get("also_in_train", 0)
        if extra or leaked:
            log.warning(
                "%s data: %d repeated input(s) (%d with different labels)%s",
                name,
                extra,
                found["conflicting_labels"],
                f", {leaked} also in the training data" if leaked else "",
            )
    return report


def _write_report(run_dir: Path) -> None:
    """The run's ``report.html``; the saved model stands even when the report cannot be drawn."""
    from graft.report import write_report

    try:
        write_report(run_dir)
    except Exception as error:  # noqa: BLE001  (a plot failing must not fail a finished fit)
        log.warning(
            "report.html not written (%s); rebuild it with: graft report %s", error, run_dir
        )


class _Snapshot:
    """The weights and train/eval modes of networks, to start a second training from exactly
    where the first one started (Lightning keeps each submodule's mode as it finds it)."""

    def __init__(self, networks: dict[str, torch.nn.Module]):
        self.networks = networks
        self.states = {
            name: {key: value.detach().clone() for key, value in net.state_dict().items()}
            for name, net in networks.items()
        }
        self.modes = {
            name: [module.training for module in net.modules()] for name, net in networks.items()
        }

    def restore(self) -> None:
        for name, net in self.networks.items():
            net.load_state_dict(self.states[name])
            for module, training in zip(net.modules(), self.modes[name], strict=True):
                module.train(training)


def _phase_work_dir(work_dir: Path, phase) -> Path:
    """Where a phase checkpoints: the run directory, except for the extra processes of a
    distributed fit in a phase that is not distributed and that the first process has not
    finished yet (they train it alike, in a folder of their own)."""
    if is_global_zero() or phase.train_backbone:
        return work_dir
    if (work_dir / "checkpoints" / phase.name / "done.json").is_file():
        return work_dir
    return Path(tempfile.mkdtemp(prefix="graft-rank-"))


def _as_data(value: DataLike, columns: dict, **task: str | None) -> LabelledData:
    if isinstance(value, LabelledData):
        return value
    from graft.data import load_data

    return load_data(value, **{k: v for k, v in columns.items() if v is not None}, **task)


def regression_stats(train: LabelledData) -> tuple[float, float]:
    """The mean and standard deviation of a regression target, which must vary."""
    mean, std = float(np.mean(train.labels, dtype=np.float64)), float(np.std(train.labels))
    if not std > 0:
        raise DataError(f"{train.source}: the regression target is {mean:g} throughout")
    return mean, std


def fit(
    data: DataLike,
    val: DataLike | None = None,
    test: DataLike | None = None,
    *,
    out=None,
    overwrite: bool = False,
    **params: Any,
) -> GraftClassifier:
    """Shortcut for ``GraftClassifier(**params).fit(data, val, test, out=out)``; with
    ``tasks=[...]`` (several label columns), for :class:`graft.multitask.MultiTaskClassifier`'s."""
    data_names = ("text_column", "image_column", "label_column", "target", "target_test")
    arguments = {k: params.pop(k) for k in data_names if k in params}
    estimator = estimator_class(params.get("tasks"))(**params)
    return estimator.fit(data, val, test, out=out, overwrite=overwrite, **arguments)


def estimator_class(tasks) -> type[GraftClassifier]:
    """:class:`GraftClassifier`, or with ``tasks`` :class:`graft.multitask.MultiTaskClassifier`."""
    if not tasks:
        return GraftClassifier
    from graft.multitask import MultiTaskClassifier

    return MultiTaskClassifier


def resume(run_dir: str | os.PathLike) -> GraftClassifier:
    """Finish a fit that was interrupted (killed, out of time), from its last checkpoint.

    Phases that had finished are loaded, the interrupted one continues from its last epoch
    with its optimiser, scheduler, early-stopping state and data order; the result equals
    that of an uninterrupted fit with the same seed.
    """
    from graft.runs import read_run_record

    record = read_run_record(Path(run_dir).expanduser())
    arguments = record.get("arguments")
    if arguments is None:
        raise RunError(
            f"{run_dir}: this run was fitted on in-memory data, which it cannot read back; "
            "resume it from Python: GraftClassifier(...).fit(data, out=RUN, resume=True)"
        )
    config = FitConfig.from_dict(record["config"])
    model = estimator_class(config.tasks)(**config.to_dict())
    return model.fit(
        arguments["data"],
        arguments["val"],
        arguments["test"],
        out=run_dir,
        resume=True,
        target=arguments.get("target"),
        target_test=arguments.get("target_test"),
        **arguments["columns"],
    )
